//! The store as pages for people, for `spy serve`: an index of the entries (name, version, target,
//! size, licence) with the releases first, each entry's metadata, inputs, users, manifest and
//! build log, its dependency graph as SVG, and a release's closure with what each part costs.
//!
//! Everything shown was written by builds, caches or metadata spy does not trust: names are parsed
//! before they reach a path, files are opened only as regular files never through a symlink, and
//! every string is escaped ([`html`]). Pages carry no script, and the server sends a
//! Content-Security-Policy that allows none.

mod html;
pub mod svg;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::io::Read;

use spy_store::{EntryMeta, Store, StoreError, StoreName};

use html::Html;

/// What a request gets.
pub enum Page {
    Html(String),
    Svg(String),
    /// A file streamed as it is: a build log (`text/plain`) or a manifest (`application/json`).
    File {
        file: File,
        content_type: &'static str,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{store_name}/manifest.json: {message}")]
    BadManifest { store_name: String, message: String },
}

/// The largest manifest parsed for a page: a real one is tens of kilobytes.
const MANIFEST_LIMIT: u64 = 8 << 20;

/// The page at `path` (the request's path without its leading `/` or query), `None` if there is
/// none.
pub fn page(store: &Store, path: &str) -> Result<Option<Page>, BrowseError> {
    if path.is_empty() || path == "index.html" {
        return Ok(Some(Page::Html(index(store)?)));
    }
    let Some(rest) = path.strip_prefix("entry/") else { return Ok(None) };
    let (name, view) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(name) = StoreName::parse(name) else { return Ok(None) };
    let entries = Entries::load(store)?;
    let Some(meta) = entries.get(&name) else { return Ok(None) };
    Ok(match view {
        "" => Some(Page::Html(entry_page(store, &entries, meta)?)),
        "graph.svg" => Some(Page::Svg(graph(&entries.closure(meta).0).into_string())),
        "closure" => Some(Page::Html(closure_page(store, &entries, meta)?)),
        "log" => store.open_log(&name)?.map(|file| Page::File {
            file,
            content_type: "text/plain; charset=utf-8",
        }),
        "manifest.json" => store.open_entry_file(&name, "manifest.json")?.map(|file| Page::File {
            file,
            content_type: "application/json",
        }),
        _ => None,
    })
}

/// The store's entries by name, read once per request.
struct Entries(BTreeMap<StoreName, EntryMeta>);

impl Entries {
    fn load(store: &Store) -> Result<Entries, StoreError> {
        Ok(Entries(store.entries()?.into_iter().map(|m| (m.store_name.clone(), m)).collect()))
    }

    fn get(&self, name: &StoreName) -> Option<&EntryMeta> {
        self.0.get(name)
    }

    /// `root` and everything it was built from, root first, then breadth-first; inputs missing
    /// from the store are returned apart.
    fn closure<'a>(&'a self, root: &'a EntryMeta) -> (Vec<&'a EntryMeta>, BTreeSet<&'a StoreName>) {
        let mut seen = BTreeSet::from([&root.store_name]);
        let (mut found, mut missing) = (Vec::new(), BTreeSet::new());
        let mut queue = VecDeque::from([root]);
        while let Some(m) = queue.pop_front() {
            found.push(m);
            for input in &m.inputs {
                if seen.insert(input) {
                    match self.0.get(input) {
                        Some(i) => queue.push_back(i),
                        None => {
                            missing.insert(input);
                        }
                    }
                }
            }
        }
        (found, missing)
    }

    fn users<'a>(&'a self, name: &'a StoreName) -> impl Iterator<Item = &'a EntryMeta> + 'a {
        self.0.values().filter(move |m| m.inputs.contains(name))
    }
}

fn href(name: &StoreName) -> String {
    format!("/entry/{name}")
}

/// Sizes as people read them, in decimal units as `du --si` and the rest of spy print them.
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.2} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

/// A registration time as people read it. The number comes from metadata a cache may have forged:
/// one beyond what a date can say (humantime stops at 9999) is shown as a number, never a panic.
fn when(unix: u64) -> String {
    const YEAR_9999_END: u64 = 253_402_300_799;
    let Some(t) = std::time::UNIX_EPOCH
        .checked_add(std::time::Duration::from_secs(unix))
        .filter(|_| unix <= YEAR_9999_END)
    else {
        return format!("{unix} (not a date)");
    };
    let s = humantime::format_rfc3339_seconds(t).to_string();
    // 2026-12-02T13:40:00Z -> 2026-12-02 13:40 UTC
    match (s.get(..10), s.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => s,
    }
}

fn licence(meta: &EntryMeta) -> &str {
    if meta.node.license.is_empty() {
        "—"
    } else {
        &meta.node.license
    }
}

/// A release's manifest (a fuse node's `manifest.json`), if the entry has one: the whole document
/// (`serde_json::Value`) or only the fields of [`ReleaseSummary`] (the index reads every release's,
/// and a whole manifest's tree is many small allocations).
fn manifest<T: serde::de::DeserializeOwned>(store: &Store, name: &StoreName) -> Result<Option<T>, BrowseError> {
    let Some(file) = store.open_entry_file(name, "manifest.json")? else {
        return Ok(None);
    };
    let bad = |message: String| BrowseError::BadManifest {
        store_name: name.to_string(),
        message,
    };
    let mut text = Vec::new();
    file.take(MANIFEST_LIMIT + 1)
        .read_to_end(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    if text.len() as u64 > MANIFEST_LIMIT {
        return Err(bad(format!("larger than {} bytes", MANIFEST_LIMIT)));
    }
    serde_json::from_slice(&text).map(Some).map_err(|e| bad(e.to_string()))
}

/// What the index shows of a release's manifest.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ReleaseSummary {
    release: Option<String>,
    license: Option<String>,
    interpreter: InterpreterVersion,
    binary: BinarySize,
    components: Vec<ComponentLicence>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct InterpreterVersion {
    version: Option<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct BinarySize {
    size: Option<u64>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ComponentLicence {
    role: String,
    license: String,
}

impl ReleaseSummary {
    /// The binary's licence: the manifest's expression, or for manifests before FUSE_VERSION 6,
    /// made the same way from the components.
    fn licence(&self) -> String {
        match &self.license {
            Some(l) => l.clone(),
            None => spy_fuse::binary_license(self.components.iter().map(|c| (c.role.as_str(), c.license.as_str()))),
        }
    }
}

fn index(store: &Store) -> Result<String, BrowseError> {
    let entries = Entries::load(store)?;
    let root = store.root().display().to_string();
    let total = entries.0.values().fold(0u64, |t, m| t.saturating_add(m.size));
    let mut h = Html::page("store", &root);
    h.raw("<h1>Store</h1><p>")
        .text(&format!("{} entries, {} in all.", entries.0.len(), size(total)))
        .raw("</p>");

    // One entry's unreadable manifest (a symlink a hostile build left, broken JSON) is named on
    // the page; it does not take the whole index down.
    let mut releases = Vec::new();
    let mut unreadable = Vec::new();
    for m in entries.0.values() {
        match manifest::<ReleaseSummary>(store, &m.store_name) {
            Ok(Some(man)) => releases.push((man.release.clone().unwrap_or_else(|| m.node.name.clone()), m, man)),
            Ok(None) => {}
            Err(e) => unreadable.push((m, e.to_string())),
        }
    }
    releases.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.registered_at.cmp(&a.1.registered_at)));
    h.raw("<h2 id=\"releases\">Releases</h2>");
    if releases.is_empty() {
        h.raw("<p class=\"muted\">No release binaries in this store (<code>spy realize python3.13-x86_64</code> makes one).</p>");
    } else {
        h.raw("<table><tr><th>release</th><th>version</th><th>target</th><th class=\"num\">binary</th><th>licence</th><th>closure</th><th>made</th></tr>");
        for (release, m, man) in &releases {
            h.raw("<tr><td>").link(&href(&m.store_name), release).raw("</td>");
            h.cell(man.interpreter.version.as_deref().unwrap_or(&m.node.version));
            h.cell(&m.node.target);
            h.num_cell(&man.binary.size.map_or_else(|| size(m.size), size));
            h.cell(&man.licence());
            h.raw("<td>")
                .link(&format!("{}/closure", href(&m.store_name)), "closure")
                .raw("</td>");
            h.cell(&when(m.registered_at)).raw("</tr>");
        }
        h.raw("</table>");
    }
    if !unreadable.is_empty() {
        h.raw("<h2 id=\"unreadable\">Unreadable manifests</h2><ul>");
        for (m, e) in &unreadable {
            h.raw("<li>")
                .link(&href(&m.store_name), m.store_name.as_str())
                .raw(": ")
                .text(e)
                .raw("</li>");
        }
        h.raw("</ul>");
    }

    h.raw("<h2 id=\"entries\">Entries</h2><table><tr><th>name</th><th>version</th><th>target</th><th class=\"num\">size</th><th>licence</th><th>origin</th><th>made</th></tr>");
    let mut sorted: Vec<&EntryMeta> = entries.0.values().collect();
    sorted.sort_by(|a, b| (&a.node.name, &a.node.target, b.registered_at).cmp(&(&b.node.name, &b.node.target, a.registered_at)));
    for m in sorted {
        h.raw("<tr><td>").link(&href(&m.store_name), &m.node.name).raw("</td>");
        h.cell(&m.node.version)
            .cell(&m.node.target)
            .num_cell(&size(m.size))
            .cell(licence(m));
        h.cell(if m.substituted_from.is_some() { "substituted" } else { "built" });
        h.cell(&when(m.registered_at)).raw("</tr>");
    }
    h.raw("</table>");
    Ok(h.finish())
}

fn entry_page(store: &Store, entries: &Entries, m: &EntryMeta) -> Result<String, BrowseError> {
    let name = &m.store_name;
    let mut h = Html::page(&format!("{} {}", m.node.name, m.node.version), &store.root().display().to_string());
    h.raw("<h1>").text(&format!("{} {}", m.node.name, m.node.version)).raw("</h1>");
    h.raw("<p>");
    if store.open_log(name)?.is_some() {
        h.link(&format!("{}/log", href(name)), "build log").raw(" · ");
    } else {
        h.raw("<span class=\"muted\">no build log</span> · ");
    }
    h.link(&format!("{}/closure", href(name)), "closure").raw(" · ");
    h.link(&format!("{}/graph.svg", href(name)), "dependency graph (SVG)");
    // An unreadable manifest is named on the page, which still shows the rest.
    let (man, man_error) = match manifest::<serde_json::Value>(store, name) {
        Ok(m) => (m, None),
        Err(e) => (None, Some(e.to_string())),
    };
    if man.is_some() {
        h.raw(" · ").link(&format!("{}/manifest.json", href(name)), "manifest.json");
    }
    h.raw("</p><table>");
    let origin = match &m.substituted_from {
        Some(from) => format!("substituted from {from}"),
        None => format!(
            "built in {:.1} s{}",
            m.build_seconds,
            if m.sandboxed { ", sandboxed" } else { ", not sandboxed" }
        ),
    };
    let rows: [(&str, String); 12] = [
        ("store path", store.entry(name).display().to_string()),
        ("id", m.node.id.to_hex()),
        ("name", m.node.name.clone()),
        ("version", m.node.version.clone()),
        ("target", m.node.target.clone()),
        ("licence", licence(m).to_string()),
        ("size", format!("{} ({} bytes, {} files)", size(m.size), m.size, m.files)),
        ("tree hash", m.tree_hash.to_hex()),
        ("origin", origin),
        ("made", when(m.registered_at)),
        ("builder", m.builder.clone()),
        ("sources", if m.sources.is_empty() { "—".into() } else { m.sources.join("\n") }),
    ];
    for (k, v) in rows {
        h.raw("<tr><th>").text(k).raw("</th><td><code>").text(&v).raw("</code></td></tr>");
    }
    h.raw("</table>");

    h.raw("<h2>Inputs</h2>");
    name_list(&mut h, entries, m.inputs.iter());
    h.raw("<h2>Used by</h2>");
    let users: Vec<&StoreName> = entries.users(name).map(|u| &u.store_name).collect();
    name_list(&mut h, entries, users.into_iter());

    h.raw("<h2>Dependency graph</h2><div class=\"graph\">")
        .svg(&graph(&entries.closure(m).0))
        .raw("</div>");
    if let Some(e) = man_error {
        h.raw("<h2>Manifest</h2><p>Unreadable: ").text(&e).raw("</p>");
    }
    if let Some(man) = man {
        h.raw("<h2>Manifest</h2><pre>");
        h.text(&serde_json::to_string_pretty(&man).unwrap_or_default());
        h.raw("</pre>");
    }
    Ok(h.finish())
}

fn name_list<'a>(h: &mut Html, entries: &Entries, names: impl Iterator<Item = &'a StoreName>) {
    let mut any = false;
    h.raw("<ul>");
    for n in names {
        any = true;
        h.raw("<li>");
        match entries.get(n) {
            Some(i) => {
                h.link(&href(n), &format!("{} {}", i.node.name, i.node.version));
                h.raw(" <span class=\"muted\">")
                    .text(&format!("{} · {}", i.node.target, size(i.size)))
                    .raw("</span>");
            }
            None => {
                h.text(n.as_str()).raw(" <span class=\"muted\">(not in this store)</span>");
            }
        }
        h.raw("</li>");
    }
    if !any {
        h.raw("<li class=\"muted\">none</li>");
    }
    h.raw("</ul>");
}

/// The dependency graph of a closure as [`Entries::closure`] gives it (its root first).
fn graph(closure: &[&EntryMeta]) -> svg::Svg {
    let nodes: Vec<svg::GraphNode> = closure
        .iter()
        .map(|m| svg::GraphNode {
            key: m.store_name.to_string(),
            href: href(&m.store_name),
            label: m.node.name.clone(),
            detail: format!("{} · {}", m.node.version, size(m.size)),
            inputs: m.inputs.iter().map(|i| i.to_string()).collect(),
        })
        .collect();
    svg::dependency_graph(&nodes)
}

fn closure_page(store: &Store, entries: &Entries, root: &EntryMeta) -> Result<String, BrowseError> {
    let (closure, missing) = entries.closure(root);
    let mut h = Html::page(&format!("closure of {}", root.node.name), &store.root().display().to_string());
    h.raw("<h1>Closure of ")
        .link(&href(&root.store_name), &format!("{} {}", root.node.name, root.node.version))
        .raw("</h1>");
    let total = closure.iter().fold(0u64, |t, m| t.saturating_add(m.size));
    h.raw("<p>")
        .text(&format!(
            "{} entries, {} in the store; everything this entry was built from.",
            closure.len(),
            size(total)
        ))
        .raw("</p>");

    if let Some(man) = manifest::<serde_json::Value>(store, &root.store_name)? {
        let licence = <ReleaseSummary as serde::Deserialize>::deserialize(&man)
            .unwrap_or_default()
            .licence();
        // A component links to its entry when the store has it.
        let by_id: std::collections::HashMap<String, &EntryMeta> = entries.0.values().map(|m| (m.node.id.to_hex(), m)).collect();
        h.raw("<h2>In the binary</h2><p>").text(&format!("Licence: {licence}")).raw("</p>");
        h.raw("<table><tr><th>component</th><th>version</th><th>role</th><th>licence</th><th>static libraries</th><th>sources</th></tr>");
        for c in man["components"].as_array().into_iter().flatten() {
            let text = |k: &str| c[k].as_str().unwrap_or("").to_string();
            let list = |k: &str, field: Option<&str>| -> String {
                c[k].as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| match field {
                        Some(f) => v[f].as_str().map(str::to_string),
                        None => v.as_str().map(str::to_string),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            h.raw("<tr>");
            match c["id"].as_str().and_then(|id| by_id.get(id)) {
                Some(e) => h.raw("<td>").link(&href(&e.store_name), &text("name")).raw("</td>"),
                None => h.cell(&text("name")),
            };
            h.cell(&text("version")).cell(&text("role")).cell(&text("license"));
            h.raw("<td><code>").text(&list("static_libraries", None)).raw("</code></td>");
            h.raw("<td><code>").text(&list("sources", Some("sha256"))).raw("</code></td></tr>");
        }
        h.raw("</table>");
    }

    h.raw("<h2>Store entries</h2><table><tr><th>name</th><th>version</th><th>target</th><th class=\"num\">size</th><th>licence</th></tr>");
    let mut sorted = closure.clone();
    sorted.sort_by(|a, b| b.size.cmp(&a.size).then(a.node.name.cmp(&b.node.name)));
    for m in sorted {
        h.raw("<tr><td>").link(&href(&m.store_name), &m.node.name).raw("</td>");
        h.cell(&m.node.version)
            .cell(&m.node.target)
            .num_cell(&size(m.size))
            .cell(licence(m))
            .raw("</tr>");
    }
    h.raw("</table>");
    if !missing.is_empty() {
        h.raw("<h2>Not in this store</h2>");
        name_list(&mut h, entries, missing.into_iter());
    }
    h.raw("<h2>Dependency graph</h2><div class=\"graph\">")
        .svg(&graph(&closure))
        .raw("</div>");
    Ok(h.finish())
}

#[cfg(test)]
mod tests;
