//! Identifies host tools for bootstrap nodes: resolved path and the first line of `--version`.
//! Results are cached in the store (`Store::host_tools`) keyed by the binary's path, size, mtime
//! and inode, so a no-op `spy realize` does not start a dozen processes.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

/// Where host tools are looked up: fixed, so a user's `PATH` (pyenv shims...) cannot change ids.
pub const HOST_PATH: [&str; 3] = ["/usr/local/bin", "/usr/bin", "/bin"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTool {
    pub name: String,
    /// The tool's real path with every symlink resolved (alternatives live in /etc, which
    /// builds do not see).
    pub path: String,
    /// First line of `<tool> --version`, or `blake3:<hash of the binary>` for tools without one.
    pub version: String,
}

#[derive(Default, Serialize, Deserialize)]
pub struct ProbeCache {
    entries: BTreeMap<String, (String, String)>,
    #[serde(skip)]
    store: Option<spy_store::Store>,
    #[serde(skip)]
    dirty: bool,
}

impl ProbeCache {
    /// The cache the store keeps (missing or unreadable starts empty).
    pub fn open(store: &spy_store::Store) -> Self {
        let mut c: ProbeCache = store.host_tools().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        c.store = Some(store.clone());
        c
    }

    pub fn in_memory() -> Self {
        Self::default()
    }

    pub fn probe(&mut self, name: &str) -> Option<HostTool> {
        let path = HOST_PATH.iter().map(|d| Path::new(d).join(name)).find(|p| p.is_file())?;
        let real = fs_err::canonicalize(&path).ok()?;
        let md = fs_err::metadata(&real).ok()?;
        // The leading tag changes whenever the way a tool is identified changes.
        let stamp = format!("v2:{}:{}:{}:{}:{}", real.display(), md.len(), md.mtime(), md.mtime_nsec(), md.ino());
        let key = format!("{}={}", path.display(), name);
        if let Some((s, v)) = self.entries.get(&key) {
            if s == &stamp {
                return Some(HostTool {
                    name: name.into(),
                    path: real.display().to_string(),
                    version: v.clone(),
                });
            }
        }
        let version = Command::new(&path)
            .arg("--version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(|l| l.trim().to_string()))
            .filter(|l| !l.is_empty())
            // Tools without --version (dash, tclsh) are identified by their bytes.
            .or_else(|| {
                let mut h = blake3::Hasher::new();
                let mut f = fs_err::File::open(&real).ok()?;
                std::io::copy(&mut f, &mut h).ok()?;
                Some(format!("blake3:{}", h.finalize().to_hex()))
            })
            .unwrap_or_else(|| "unknown".into());
        self.entries.insert(key, (stamp, version.clone()));
        self.dirty = true;
        Some(HostTool {
            name: name.into(),
            path: real.display().to_string(),
            version,
        })
    }

    /// Writes the cache back to the store if it changed; a failure only costs speed next time
    /// (the tools are probed again), so it is not an error.
    pub fn save(&mut self) {
        if let (true, Some(store)) = (self.dirty, &self.store) {
            if let Ok(bytes) = serde_json::to_vec(&*self) {
                store.save_host_tools(&bytes).ok();
            }
            self.dirty = false;
        }
    }
}
