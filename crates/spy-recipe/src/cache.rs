//! A cache of parsed recipe files, keyed by file identity, so a graph of thousands of recipes is
//! not read and parsed from TOML on every command.
//!
//! The cache is one file per graph directory, JSON lines: a header, then one line per recipe file,
//! `["rel/path.toml",[dev,ino,size,mtime,mtime_ns,ctime,ctime_ns]]` TAB the file's table as JSON.
//! An entry is used only when the file's stamp is the recorded one; ctime is in the stamp because
//! nothing but the kernel sets it, so any write or rename since makes the entry stale. A file
//! changed in the last seconds before a load is not recorded (git's "racily clean" problem: a
//! write in the same clock tick could leave the stamp unchanged).
//!
//! The cache is not trusted more than a recipe: an entry is deserialized through the same checked
//! types as the TOML (names, paths, URLs), and a line that does not parse is a miss. The header
//! carries a hash of what decides how a file parses (build.rs), so a spy that parses differently
//! ignores the file.

use std::borrow::Cow;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::schema::PartialRecipe;
use crate::RecipeError;

/// Changes whenever `schema.rs`, `names.rs`, the crate's Cargo.toml or the locked crate versions
/// change (build.rs).
const SCHEMA: &str = env!("SPY_RECIPE_SCHEMA_HASH");

/// A file changed less than this long before a load is parsed but not recorded.
const RACY: Duration = Duration::from_secs(2);

/// Entry lines parsed at a time (in parallel) when a cache is indexed.
const ENTRY_CHUNK: usize = 4096;

/// The largest cache file read (a graph of 10,000 recipes makes about 4 MB).
pub const MAX_CACHE_BYTES: u64 = 32 << 20;

/// What identifies a file's contents without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Stamp([i64; 7]);

impl Stamp {
    pub(crate) fn of(md: &std::fs::Metadata) -> Stamp {
        Stamp([
            md.dev() as i64,
            md.ino() as i64,
            md.size() as i64,
            md.mtime(),
            md.mtime_nsec(),
            md.ctime(),
            md.ctime_nsec(),
        ])
    }

    /// Whether the file may still change within the same timestamp. ctime is what counts: every
    /// change sets it to the kernel's clock, while mtime can be set to anything (`touch -d`).
    fn is_racy(&self, load_started: SystemTime) -> bool {
        let Ok(now) = load_started.duration_since(UNIX_EPOCH) else {
            return true;
        };
        let limit = now.saturating_sub(RACY);
        (self.0[5], self.0[6]) >= (limit.as_secs() as i64, limit.subsec_nanos() as i64)
    }
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct Header {
    format: u32,
    schema: String,
}

/// The parsed recipes of one graph directory, as last saved, and the lines of the next save.
#[derive(Default)]
pub struct RecipeCache {
    /// The saved file, header checked (empty if there was none, or it was foreign).
    bytes: Vec<u8>,
    /// Per file a load found, in its order: the saved entry (stamp, the whole line in `bytes`, the
    /// recipe's JSON in `bytes`), if there is one (indexed after the walk, so a huge hostile file
    /// cannot fill memory).
    slots: Vec<Option<Entry>>,
    /// How many well-formed lines `bytes` has (a file gone since, a line twice, count too).
    recorded: usize,
    /// Whether a load records what it parsed (a cache nobody will save does not stat files).
    records: bool,
    /// What the next save holds, set by a load: `None` when it would be the file as read.
    updated: Option<Vec<u8>>,
}

/// A saved entry: the file's stamp, its whole line and its recipe's JSON (ranges of the file).
type Entry = (Stamp, Range<usize>, Range<usize>);

/// A file's line in the next save: its saved line, or a new one.
pub(crate) enum CacheLine {
    Saved(Range<usize>),
    New(Vec<u8>),
}

/// One recipe file's part of a load: the table, and its cache line (`None`: not to be recorded).
pub(crate) struct Looked {
    pub partial: PartialRecipe,
    /// The file's text when it was read (a hit does not read it).
    pub text: Option<String>,
    pub line: Option<CacheLine>,
    pub hit: bool,
}

/// The start of an entry line, `["rel/path.toml",[stamp]]`: the path borrowed unless escaped.
#[derive(serde::Deserialize)]
struct EntryKey<'a>(#[serde(borrow)] Cow<'a, str>, Stamp);

impl RecipeCache {
    /// A cache that knows nothing yet: every file is parsed, and recorded for the next load.
    pub fn empty() -> RecipeCache {
        RecipeCache {
            records: true,
            ..RecipeCache::default()
        }
    }

    /// No cache: files are parsed and nothing is recorded.
    pub fn none() -> RecipeCache {
        RecipeCache::default()
    }

    /// The cache saved in `bytes`; an unreadable or foreign file gives an empty cache.
    pub fn from_bytes(bytes: Vec<u8>) -> RecipeCache {
        let header_ok = LineRanges::new(&bytes)
            .next()
            .and_then(|r| serde_json::from_slice::<Header>(&bytes[r]).ok())
            .is_some_and(|h| h == header());
        if !header_ok {
            return RecipeCache::empty();
        }
        RecipeCache {
            bytes,
            records: true,
            ..RecipeCache::default()
        }
    }

    /// Calls `f` with each well-formed entry line, in file order: its relative path, stamp, whole
    /// line and recipe JSON. Lines are parsed in parallel, a few thousand at a time (a hostile
    /// file of a million tiny lines then costs a scan, not memory).
    fn for_each_entry<'a>(&'a self, mut f: impl FnMut(Cow<'a, str>, Entry)) {
        use rayon::prelude::*;
        let mut lines = LineRanges::new(&self.bytes).skip(1).peekable();
        let mut chunk: Vec<Range<usize>> = Vec::with_capacity(ENTRY_CHUNK);
        while lines.peek().is_some() {
            chunk.clear();
            chunk.extend(lines.by_ref().take(ENTRY_CHUNK));
            let parsed: Vec<Option<(Cow<'a, str>, Entry)>> = chunk
                .par_iter()
                .map(|line| {
                    let text = &self.bytes[line.clone()];
                    let tab = memchr::memchr(b'\t', text)?;
                    let EntryKey(rel, stamp) = serde_json::from_slice(&text[..tab]).ok()?;
                    let recipe = line.start + tab + 1..line.end;
                    Some((rel, (stamp, line.clone(), recipe)))
                })
                .collect();
            for (rel, entry) in parsed.into_iter().flatten() {
                f(rel, entry);
            }
        }
    }

    /// Indexes the entries of the files a load found (`rels`: their relative paths, `None` for
    /// one that is not UTF-8, in the load's order, which is byte order).
    ///
    /// A save writes its lines in that order, so one merge of the two sorted lists pairs them,
    /// without hashing 10,000 paths twice. A line out of order, or a second line for a path, is
    /// left out: it is counted, so the cache is saved again, in order.
    pub(crate) fn index_for(&mut self, rels: &[Option<&str>]) {
        let mut slots = vec![None; rels.len()];
        let mut wanted = rels.iter().enumerate().filter_map(|(i, r)| r.map(|r| (i, r))).peekable();
        let mut recorded = 0;
        self.for_each_entry(|rel, entry| {
            recorded += 1;
            while wanted.next_if(|&(_, w)| w < rel.as_ref()).is_some() {}
            if let Some((i, _)) = wanted.next_if(|&(_, w)| w == rel.as_ref()) {
                slots[i] = Some(entry);
            }
        });
        self.slots = slots;
        self.recorded = recorded;
    }

    /// Whether the cache had entries for the files a load found (a load that failed may then have
    /// taken tables from it).
    pub(crate) fn has_entries(&self) -> bool {
        self.slots.iter().any(Option::is_some)
    }

    /// How many files the saved cache has entries for.
    pub fn len(&self) -> usize {
        let mut n = 0;
        self.for_each_entry(|_, _| n += 1);
        n
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes to save after a load that changed what the cache holds; `None` when the saved file
    /// is still exact.
    pub fn updated(&self) -> Option<&[u8]> {
        self.updated.as_deref()
    }

    /// The table of the file at `path`, the load's file number `pos` (`rel` below the graph
    /// directory; `None` keeps it out of the cache): from the cache when its stamp is the recorded
    /// one, else read and parsed.
    pub(crate) fn look_up(&self, path: &Path, pos: usize, rel: Option<&str>, load_started: SystemTime) -> Result<Looked, RecipeError> {
        let rel = rel.filter(|_| self.records);
        let stamp = rel.and_then(|_| std::fs::metadata(path).ok()).map(|md| Stamp::of(&md));
        let saved = self.slots.get(pos).and_then(Option::as_ref).filter(|_| rel.is_some());
        if let (Some(stamp), Some((recorded, line, recipe))) = (stamp, saved) {
            if *recorded == stamp {
                // Checked as UTF-8 once, as a whole: from bytes, serde_json checks each string on
                // its own (4 % of `spy list`'s instructions on 10,000 nodes).
                let json = std::str::from_utf8(&self.bytes[recipe.clone()]).ok();
                if let Some(partial) = json.and_then(|j| serde_json::from_str::<PartialRecipe>(j).ok()) {
                    return Ok(Looked {
                        partial,
                        text: None,
                        line: Some(CacheLine::Saved(line.clone())),
                        hit: true,
                    });
                }
            }
        }
        let (text, partial) = crate::parse_recipe_file(path)?;
        let line = match (rel, stamp) {
            (Some(rel), Some(s)) if !s.is_racy(load_started) => entry_line(rel, s, &partial).map(CacheLine::New),
            _ => None,
        };
        Ok(Looked {
            partial,
            text: Some(text),
            line,
            hit: false,
        })
    }

    /// Records a load's lines (in file order); the cache changes when a file gets a new entry, or
    /// an entry goes (its file is gone, changed just now, or the line was damaged or doubled).
    pub(crate) fn finish_load(&mut self, lines: Vec<Option<CacheLine>>, hits: usize) {
        // A file that cannot be recorded (changed just now, a name that is not UTF-8) is no reason
        // to write the cache again; a new entry, or an entry to drop, is.
        let new_lines = lines.iter().flatten().count() - hits;
        if !self.records || new_lines == 0 && hits == self.recorded {
            self.updated = None;
            return;
        }
        let mut out = serde_json::to_vec(&header()).expect("a header serializes");
        out.push(b'\n');
        for line in lines.into_iter().flatten() {
            out.extend_from_slice(match &line {
                CacheLine::Saved(range) => &self.bytes[range.clone()],
                CacheLine::New(bytes) => bytes,
            });
            out.push(b'\n');
        }
        self.updated = Some(out);
    }
}

fn header() -> Header {
    Header {
        format: 1,
        schema: SCHEMA.into(),
    }
}

fn entry_line(rel: &str, stamp: Stamp, partial: &PartialRecipe) -> Option<Vec<u8>> {
    let mut line = serde_json::to_vec(&(rel, stamp)).ok()?;
    line.push(b'\t');
    // serde_json escapes control characters in strings, so a tab or a newline here ends a field.
    serde_json::to_writer(&mut line, partial).ok()?;
    Some(line)
}

/// The byte ranges of the lines of `bytes` (without their newlines).
struct LineRanges<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> LineRanges<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineRanges { bytes, pos: 0 }
    }
}

impl Iterator for LineRanges<'_> {
    type Item = Range<usize>;
    fn next(&mut self) -> Option<Range<usize>> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let start = self.pos;
        let end = memchr::memchr(b'\n', &self.bytes[start..]).map_or(self.bytes.len(), |i| start + i);
        self.pos = end + 1;
        Some(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{write, CONFIG};
    use crate::Graph;
    use std::path::PathBuf;

    /// A load that records every file (as if it started long after they were written).
    fn later() -> SystemTime {
        SystemTime::now() + Duration::from_secs(60)
    }

    fn load(g: &Path, saved: &[u8]) -> (Graph, RecipeCache) {
        let mut cache = RecipeCache::from_bytes(saved.to_vec());
        let graph = Graph::load_cached_at(g, &[], &mut cache, later()).unwrap();
        (graph, cache)
    }

    fn graph_dir() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let g = d.path().join("graph");
        write(&g, "spy.toml", CONFIG);
        write(
            &g,
            "a.toml",
            "name = \"a\"\nversion = \"1\"\npatches = [\"p.patch\"]\n[env]\nX = \"1\"\n",
        );
        write(
            &g,
            "libs/b.toml",
            "name = \"b\"\nversion = \"2\"\ndeps = [\"a\"]\n[[sources]]\nurls = [\"https://example.org/b.tar.gz\"]\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n[target.i686-linux-musl]\nversion = \"2.1\"\n",
        );
        write(&g, "fam.toml", "version = \"3\"\n[variants.c1]\n[variants.c2.env]\nY = \"2\"\n");
        (d, g)
    }

    fn saved_after_first_load(g: &Path) -> Vec<u8> {
        let mut cache = RecipeCache::empty();
        Graph::load_cached_at(g, &[], &mut cache, later()).unwrap();
        cache.updated().expect("a first load records its files").to_vec()
    }

    #[test]
    fn an_unchanged_graph_loads_from_the_cache_as_from_its_files() {
        let (_d, g) = graph_dir();
        let saved = saved_after_first_load(&g);
        let (cached, cache) = load(&g, &saved);
        assert_eq!(cache.len(), 3);
        assert!(cache.updated().is_none(), "nothing changed, nothing to save");
        let parsed = Graph::load(&g, &[]).unwrap();
        assert_eq!(format!("{:?}", cached.nodes), format!("{:?}", parsed.nodes));
        assert_eq!(cached.recipe_for("b", "i686-linux-musl").unwrap().version, "2.1");
        assert_eq!(
            cached.recipe_for("a", "x86_64-linux-musl").unwrap().patches,
            vec![g.join("p.patch")]
        );
    }

    #[test]
    fn a_changed_added_or_removed_file_is_seen_at_once() {
        let (_d, g) = graph_dir();
        let saved = saved_after_first_load(&g);
        // Same length, new contents: the stamp's ctime (and mtime) moved.
        write(
            &g,
            "a.toml",
            "name = \"a\"\nversion = \"9\"\npatches = [\"p.patch\"]\n[env]\nX = \"1\"\n",
        );
        let (graph, cache) = load(&g, &saved);
        assert_eq!(graph.recipe_for("a", "x86_64-linux-musl").unwrap().version, "9");
        let saved = cache.updated().expect("the changed file is recorded again").to_vec();
        std::fs::remove_file(g.join("fam.toml")).unwrap();
        write(&g, "d.toml", "name = \"d\"\nversion = \"4\"\n");
        let (graph, cache) = load(&g, &saved);
        assert!(!graph.nodes.contains_key("c1") && graph.nodes.contains_key("d"));
        let saved = cache.updated().expect("a removed file leaves the cache").to_vec();
        assert_eq!(RecipeCache::from_bytes(saved).len(), 3);
    }

    #[test]
    fn a_file_changed_just_before_the_load_is_not_recorded() {
        let (_d, g) = graph_dir();
        let mut cache = RecipeCache::empty();
        Graph::load_cached_at(&g, &[], &mut cache, SystemTime::now()).unwrap();
        assert!(cache.updated().is_none(), "files written this second may change within their stamp");
        // Nor is a file changed just now, while the others stay recorded.
        let saved = saved_after_first_load(&g);
        write(&g, "a.toml", "name = \"a\"\nversion = \"2\"\n");
        let mut cache = RecipeCache::from_bytes(saved);
        let graph = Graph::load_cached_at(&g, &[], &mut cache, SystemTime::now()).unwrap();
        assert_eq!(graph.recipe_for("a", "x86_64-linux-musl").unwrap().version, "2");
        let saved = cache.updated().expect("a.toml's old entry is dropped").to_vec();
        assert_eq!(RecipeCache::from_bytes(saved).len(), 2);
        // A future mtime (`touch -d`) does not keep a file out: ctime is what moves.
        let (_d, g) = graph_dir();
        let f = std::fs::File::options().write(true).open(g.join("a.toml")).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(86400 * 365)).unwrap();
        let mut cache = RecipeCache::empty();
        Graph::load_cached_at(&g, &[], &mut cache, SystemTime::now() + Duration::from_secs(60)).unwrap();
        let saved = cache.updated().unwrap().to_vec();
        assert_eq!(RecipeCache::from_bytes(saved.clone()).len(), 3);
        let (_, again) = load(&g, &saved);
        assert!(again.updated().is_none(), "an unchanged graph does not write its cache again");
    }

    #[test]
    fn a_foreign_or_damaged_cache_is_not_used() {
        let (_d, g) = graph_dir();
        let saved = saved_after_first_load(&g);
        let text = String::from_utf8(saved.clone()).unwrap();

        // Another schema's cache.
        let foreign = text.replacen(SCHEMA, "0000000000000000", 1);
        assert!(RecipeCache::from_bytes(foreign.into_bytes()).is_empty());
        assert!(RecipeCache::from_bytes(b"\xff\xfe garbage\n".to_vec()).is_empty());

        // A line whose table fails the recipe checks (a dependency named as a path): that file is
        // read again, and the rest still comes from the cache.
        let hostile = text.replace("\"deps\":[\"a\"]", "\"deps\":[\"../../etc\"]");
        assert_ne!(hostile, text);
        let (graph, cache) = load(&g, hostile.as_bytes());
        assert_eq!(graph.nodes["b"].recipe.deps.as_deref().unwrap(), ["a"]);
        assert!(cache.updated().is_some(), "the damaged line is written again");

        // A line cut short, a line without its table.
        let cut: String = text.lines().map(|l| format!("{}\n", &l[..l.len() * 2 / 3])).collect();
        let (graph, _) = load(&g, format!("{}\n{}", text.lines().next().unwrap(), cut).as_bytes());
        assert_eq!(graph.nodes.len(), 4);
    }

    /// Entries are paired with files by one merge of two sorted lists: lines out of order, or a
    /// path twice, are misses (the files are read), and the cache is saved again in order.
    #[test]
    fn entries_out_of_order_or_twice_are_read_again_and_saved_in_order() {
        let (_d, g) = graph_dir();
        let saved = saved_after_first_load(&g);
        let text = String::from_utf8(saved.clone()).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        let header = lines.remove(0);
        let parsed = Graph::load(&g, &[]).unwrap();
        let reversed: Vec<&str> = lines.iter().rev().copied().collect();
        let twice: Vec<&str> = lines.iter().flat_map(|l| [*l, *l]).collect();
        for damaged in [reversed, twice] {
            let bytes = format!("{header}\n{}\n", damaged.join("\n"));
            let (graph, cache) = load(&g, bytes.as_bytes());
            assert_eq!(format!("{:?}", graph.nodes), format!("{:?}", parsed.nodes));
            let again = cache.updated().expect("saved again").to_vec();
            assert_eq!(again, saved, "in file order, once each");
            let (_, cache) = load(&g, &again);
            assert!(cache.updated().is_none(), "every entry is a hit now");
        }
    }

    #[test]
    fn a_load_that_fails_on_cached_tables_is_made_again_from_the_files() {
        let (_d, g) = graph_dir();
        let saved = saved_after_first_load(&g);
        let text = String::from_utf8(saved).unwrap();
        // a.toml's entry claims node `b`, which b.toml defines: a duplicate only the cache makes.
        let line = text.lines().find(|l| l.starts_with("[\"a.toml\"")).unwrap();
        let tab = line.find('\t').unwrap();
        let hostile = text.replace(line, &format!("{}\t{{\"name\":\"b\",\"version\":\"1\"}}", &line[..tab]));
        let (graph, cache) = load(&g, hostile.as_bytes());
        assert_eq!(graph.recipe_for("a", "x86_64-linux-musl").unwrap().version, "1");
        let repaired = cache.updated().expect("the cache is made anew").to_vec();
        assert!(!String::from_utf8(repaired).unwrap().contains("{\"name\":\"b\",\"version\":\"1\"}"));
        // A hostile file of many entries for files the graph does not have costs a scan, not memory.
        let mut big = text.lines().next().unwrap().to_string();
        for i in 0..200_000 {
            big.push_str(&format!("\n[\"{i:x}\",[0,0,0,0,0,0,0]]\t{{}}"));
        }
        let (graph, cache) = load(&g, big.as_bytes());
        assert_eq!(graph.nodes.len(), 4);
        assert!(!cache.has_entries() && cache.recorded == 200_000);
        assert!(cache.updated().is_some(), "the entries of unknown files are dropped");
    }

    #[test]
    fn a_cached_table_the_settings_now_refuse_is_reported_from_its_file() {
        let (_d, g) = graph_dir();
        let saved = saved_after_first_load(&g);
        write(&g, "spy.toml", "format = 1\n[targets.x86_64-linux-musl]\nshort = \"x86_64\"\n");
        let mut cache = RecipeCache::from_bytes(saved);
        let e = Graph::load_cached_at(&g, &[], &mut cache, later()).unwrap_err().to_string();
        assert!(e.contains("b.toml:7") && e.contains("i686-linux-musl"), "{e}");
    }

    /// Every recipe of the repository's graph comes back from its cache line as it was parsed.
    #[test]
    fn every_graph_recipe_round_trips_through_a_cache_line() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../graph");
        let mut files = Vec::new();
        crate::collect_toml(&root, &mut files).unwrap();
        files.retain(|f| !f.ends_with("spy.toml"));
        assert!(files.len() > 20, "the graph is there");
        let stamp = Stamp([1, 2, 3, 4, 5, 6, 7]);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let parsed: PartialRecipe = toml::from_str(&text).unwrap();
            let line = entry_line("x.toml", stamp, &parsed).unwrap();
            assert!(!line.contains(&b'\n'), "{}", f.display());
            let tab = line.iter().position(|&b| b == b'\t').unwrap();
            let back: PartialRecipe = serde_json::from_slice(&line[tab + 1..]).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert_eq!(format!("{back:?}"), format!("{parsed:?}"), "{}", f.display());
        }
    }
}
