//! The archives of a release binary and its CycloneDX SBOM. Each archive holds `NAME/bin/NAME`,
//! `NAME/manifest.json` and `NAME/sbom.cdx.json`, written the same way every time (entries in that
//! order, mtime 0, owner 0, no user names, gzip without a name or time, zstd at a fixed level on
//! one thread), streamed from the files, so that the same binary gives the same archive bytes.

use std::io::{self, Read, Write};
use std::path::Path;

use serde_json::{json, Value};
use spy_cache::archive::header;

/// zstd level 17: on python3.13-x86_64's archive 2% larger than 19 (10.19 against 9.97 MB) and
/// compressed with about 30 MB less memory, which keeps `spy release` under 100 MiB of peak RSS
/// (level 19 measured 99 MB).
const ZSTD_LEVEL: i32 = 17;

/// The members of a release archive: (path in the archive, source file, mode).
fn members<'a>(name: &str, binary: &'a Path, manifest: &'a Path, sbom: &'a Path) -> [(String, &'a Path, u32); 3] {
    [
        (format!("{name}/bin/{name}"), binary, 0o755),
        (format!("{name}/manifest.json"), manifest, 0o644),
        (format!("{name}/sbom.cdx.json"), sbom, 0o644),
    ]
}

fn write_tar<W: Write>(out: W, members: &[(String, &Path, u32)]) -> io::Result<W> {
    let mut b = tar::Builder::new(out);
    // Directories first, as `tar` makes them.
    let mut dirs: Vec<String> = Vec::new();
    for (path, _, _) in members {
        let mut prefix = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, d)| d.to_vec())
            .unwrap_or_default()
        {
            prefix = if prefix.is_empty() {
                part.to_string()
            } else {
                format!("{prefix}/{part}")
            };
            if !dirs.contains(&prefix) {
                dirs.push(prefix.clone());
            }
        }
    }
    for d in &dirs {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, format!("{d}/"), io::empty())?;
    }
    for (path, file, mode) in members {
        let f = std::fs::File::open(file)?;
        let len = f.metadata()?.len();
        let mut h = header(tar::EntryType::Regular, *mode, len);
        b.append_data(&mut h, path, Exact { inner: f, remaining: len })?;
    }
    b.into_inner()
}

/// Exactly `remaining` bytes of `inner`: a file that grows while it is archived cannot make its
/// entry longer than its header says, and one that shrinks is an error, not a short entry.
struct Exact<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was archived",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Writes `out_dir/NAME.tar.gz` and `out_dir/NAME.tar.zst`; returns their file names.
pub fn write_archives(out_dir: &Path, name: &str, binary: &Path, manifest: &Path, sbom: &Path) -> io::Result<[String; 2]> {
    let m = members(name, binary, manifest, sbom);
    let gz_name = format!("{name}.tar.gz");
    let zst_name = format!("{name}.tar.zst");
    replace_with(&out_dir.join(&gz_name), |f| {
        let gz = flate2::GzBuilder::new().mtime(0).write(f, flate2::Compression::best());
        write_tar(gz, &m)?.finish()
    })?;
    replace_with(&out_dir.join(&zst_name), |f| {
        let mut z = zstd::stream::write::Encoder::new(f, ZSTD_LEVEL)?;
        z.include_checksum(true)?;
        write_tar(z, &m)?.finish()
    })?;
    Ok([gz_name, zst_name])
}

/// Writes `to` through a temporary file beside it (`.NAME.spy-tmp`), flushed and synced before
/// it is renamed into place: a failed write (a full disk) leaves the old file, never a short one.
pub(crate) fn replace_with(
    to: &Path,
    write: impl FnOnce(io::BufWriter<std::fs::File>) -> io::Result<io::BufWriter<std::fs::File>>,
) -> io::Result<()> {
    let tmp = temp_beside(to);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let done = write(io::BufWriter::new(std::fs::File::create(&tmp)?))
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .and_then(|f| f.sync_all());
    match done {
        Ok(()) => std::fs::rename(&tmp, to),
        // The write's error is the one to report; a partial file that cannot be removed is named
        // in it.
        Err(e) => match std::fs::remove_file(&tmp) {
            Ok(()) => Err(e),
            Err(r) => Err(io::Error::new(
                e.kind(),
                format!("{e} (and the partial file {} remains: {r})", tmp.display()),
            )),
        },
    }
}

/// `DIR/.NAME.spy-tmp` for `DIR/NAME`: one temporary name per file (`with_extension` would give
/// `python3.13-x86_64.tar.gz` and `.tar.zst` the same one).
fn temp_beside(to: &Path) -> std::path::PathBuf {
    let name = to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    to.with_file_name(format!(".{name}.spy-tmp"))
}

/// The CycloneDX 1.6 SBOM of a release binary, from its manifest (`manifest.json`, spy-fuse's
/// format): the binary as the BOM's component (with its sha256), every component of the manifest
/// as a library or tool with its version, license expression, spy node id and pinned sources, and
/// the dependency of the binary on each linked component. No time stamp, and a serial number made
/// from the binary's sha256: the same binary gives the same SBOM.
pub fn cyclonedx(name: &str, manifest: &Value) -> Result<Value, String> {
    let binary_sha = manifest["binary"]["sha256"]
        .as_str()
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or("the manifest names no sha256 of its binary")?;
    let version = manifest["interpreter"]["version"].as_str().unwrap_or_default();
    // A component's node id is unique in the manifest (its name and version need not be).
    let bom_ref = |c: &Value| format!("spy-node:{}", c["id"].as_str().unwrap_or_default());
    let components: Vec<Value> = manifest["components"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let role = c["role"].as_str().unwrap_or_default();
            let mut comp = json!({
                "type": if role == "build" { "application" } else { "library" },
                "bom-ref": bom_ref(c),
                "name": c["name"],
                "version": c["version"],
                "scope": if role == "build" { "excluded" } else { "required" },
                "properties": [
                    { "name": "spy:role", "value": role },
                    { "name": "spy:node-id", "value": c["id"] },
                ],
            });
            if let Some(l) = c["license"].as_str().filter(|l| !l.is_empty()) {
                comp["licenses"] = json!([{ "expression": l }]);
            }
            let refs: Vec<Value> = c["sources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    let file = s["file"].as_str()?;
                    let mut r =
                        json!({ "type": "source-distribution", "url": format!("file:{file}"), "comment": "the pinned source file" });
                    if let Some(sha) = s["sha256"].as_str() {
                        r["hashes"] = json!([{ "alg": "SHA-256", "content": sha }]);
                    } else if let (Some(git), Some(commit)) = (s["git"].as_str(), s["commit"].as_str()) {
                        r = json!({ "type": "vcs", "url": git, "comment": format!("commit {commit}") });
                    }
                    Some(r)
                })
                .collect();
            if !refs.is_empty() {
                comp["externalReferences"] = json!(refs);
            }
            let patches: Vec<Value> = c["patches"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| json!({ "type": "unofficial", "diff": { "text": { "content": p["name"], "contentType": "text/plain" } } }))
                .collect();
            if !patches.is_empty() {
                comp["pedigree"] = json!({ "patches": patches });
            }
            comp
        })
        .collect();
    let linked: Vec<Value> = manifest["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["role"] != "build")
        .map(|c| json!(bom_ref(c)))
        .collect();
    let mut binary = json!({
        "type": "application",
        "bom-ref": name,
        "name": name,
        "version": version,
        "hashes": [{ "alg": "SHA-256", "content": binary_sha }],
    });
    // The binary's own licence expression (the manifest's, from FUSE_VERSION 6 on).
    if let Some(l) = manifest["license"].as_str().filter(|l| !l.is_empty()) {
        binary["licenses"] = json!([{ "expression": l }]);
    }
    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid_from(binary_sha)),
        "version": 1,
        "metadata": {
            "tools": { "components": [{ "type": "application", "name": "spy", "version": env!("CARGO_PKG_VERSION") }] },
            "component": binary,
        },
        "components": components,
        "dependencies": [{ "ref": name, "dependsOn": linked }],
    }))
}

/// A version-4-shaped UUID from the first 16 bytes of a hex digest (random bits replaced by the
/// hash's, so the same binary always has the same serial number).
fn uuid_from(hex: &str) -> String {
    let mut h: Vec<u8> = (0..16)
        .map(|i| hex.get(2 * i..2 * i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()).unwrap_or(0))
        .collect();
    h[6] = (h[6] & 0x0f) | 0x40;
    h[8] = (h[8] & 0x3f) | 0x80;
    let s: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &s[0..8], &s[8..12], &s[12..16], &s[16..20], &s[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_the_same_bytes_every_time_and_hold_the_three_files() {
        let d = tempfile::tempdir().unwrap();
        let (bin, man, sbom) = (d.path().join("b"), d.path().join("m"), d.path().join("s"));
        std::fs::write(&bin, vec![7u8; 100_000]).unwrap();
        std::fs::write(&man, "{}\n").unwrap();
        std::fs::write(&sbom, "{\"bomFormat\":\"CycloneDX\"}\n").unwrap();
        let (o1, o2) = (d.path().join("one"), d.path().join("two"));
        std::fs::create_dir_all(&o1).unwrap();
        std::fs::create_dir_all(&o2).unwrap();
        let names = write_archives(&o1, "py-x", &bin, &man, &sbom).unwrap();
        // Later, with other file times: the same bytes.
        let t = std::fs::File::options().write(true).open(&bin).unwrap();
        t.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(12345))
            .unwrap();
        write_archives(&o2, "py-x", &bin, &man, &sbom).unwrap();
        for n in &names {
            assert_eq!(std::fs::read(o1.join(n)).unwrap(), std::fs::read(o2.join(n)).unwrap(), "{n}");
        }
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(o1.join(&names[0])).unwrap());
        let zst = zstd::stream::read::Decoder::new(std::fs::File::open(o1.join(&names[1])).unwrap()).unwrap();
        for r in [Box::new(gz) as Box<dyn Read>, Box::new(zst)] {
            let mut a = tar::Archive::new(r);
            let entries: Vec<(String, u32, u64, u64)> = a
                .entries()
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let h = e.header();
                    (
                        e.path().unwrap().display().to_string(),
                        h.mode().unwrap(),
                        h.size().unwrap(),
                        h.mtime().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                entries,
                [
                    ("py-x/".to_string(), 0o755, 0, 0),
                    ("py-x/bin/".to_string(), 0o755, 0, 0),
                    ("py-x/bin/py-x".to_string(), 0o755, 100_000, 0),
                    ("py-x/manifest.json".to_string(), 0o644, 3, 0),
                    ("py-x/sbom.cdx.json".to_string(), 0o644, 26, 0),
                ]
            );
        }
    }

    #[test]
    fn the_sbom_names_the_binary_each_component_and_its_sources() {
        let manifest = json!({
            "release": "python3.13-x86_64",
            "interpreter": {"name": "python3.13-interp", "version": "3.13.15"},
            "binary": {"sha256": "ab".repeat(32)},
            "license": "Apache-2.0 AND PSF-2.0",
            "components": [
                {"name": "openssl", "version": "3.5.7", "license": "Apache-2.0", "role": "linked", "id": "cd".repeat(32),
                 "sources": [{"file": "openssl-3.5.7.tar.gz", "sha256": "ef".repeat(32)}]},
                {"name": "cpython3.11", "version": "3.11.2", "license": "PSF-2.0", "role": "interpreter", "id": "01".repeat(32),
                 "sources": [], "patches": [{"name": "CVE-2023-24329-strip-control-chars-urlsplit.patch", "blake3": "02".repeat(32)}]},
                {"name": "cython-py3.13", "version": "3.3.1", "license": "Apache-2.0", "role": "build", "id": "03".repeat(32), "sources": []},
            ],
        });
        let bom = cyclonedx("python3.13-x86_64", &manifest).unwrap();
        assert_eq!(bom["specVersion"], "1.6");
        assert_eq!(bom["serialNumber"], "urn:uuid:abababab-abab-4bab-abab-abababababab");
        assert_eq!(bom["metadata"]["component"]["hashes"][0]["content"], "ab".repeat(32));
        assert_eq!(bom["metadata"]["component"]["version"], "3.13.15");
        assert_eq!(bom["metadata"]["component"]["licenses"][0]["expression"], "Apache-2.0 AND PSF-2.0");
        let c = &bom["components"];
        assert_eq!(c[0]["licenses"][0]["expression"], "Apache-2.0");
        assert_eq!(c[0]["externalReferences"][0]["hashes"][0]["content"], "ef".repeat(32));
        assert_eq!(
            c[1]["pedigree"]["patches"][0]["diff"]["text"]["content"],
            "CVE-2023-24329-strip-control-chars-urlsplit.patch"
        );
        assert_eq!(c[2]["scope"], "excluded");
        assert_eq!(c[0]["bom-ref"], format!("spy-node:{}", "cd".repeat(32)));
        assert_eq!(
            bom["dependencies"][0]["dependsOn"],
            json!([format!("spy-node:{}", "cd".repeat(32)), format!("spy-node:{}", "01".repeat(32))])
        );
        // No binary hash, no SBOM (an empty hash and a shared serial number otherwise).
        assert!(cyclonedx("x", &json!({"components": []})).is_err());
    }
}
