//! `spy serve`'s pages as a person sees them: a real headless Chromium loads the index of a
//! fixture store, follows every link it shows (entries, closures, logs, manifests, graphs), and
//! takes screenshots that the test reads back pixel by pixel. A build that writes markup into its
//! log and a recipe whose licence is markup must show as text, never run.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Fixture, Server};

/// A store with a release (the fuse fixture), hello and libgreet, and a node whose licence and log
/// are hostile markup; served by `spy serve` on a free port. Returns the server and its URL.
fn serve(f: &Fixture) -> (Server, String) {
    f.fuse_graph();
    f.greet_graph("1.0", "");
    f.write(
        "graph/other.toml",
        "name = \"other\"\nversion = \"1\"\nlicense = \"MIT <img src=x onerror=\\\"document.title='pwned'\\\">\"\n\
         [phases]\ninstall = \"echo '<script>document.title=\\\"pwned\\\"</script>'; echo other > $out/other.txt\"\n",
    );
    f.ok(&["realize", "--no-out-link", "fused-x86_64", "hello", "other"]);
    let (server, url) = common::start_spy_serve(f.cmd(&["serve", "--addr", "127.0.0.1:0"]));
    (server, url.trim_end_matches('/').to_string())
}

fn chromium() -> String {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return c.to_string();
        }
    }
    panic!("no Chromium on PATH: `bash scripts/setup-host.sh` installs it (Debian package chromium)");
}

struct Browser {
    bin: String,
    profile: tempfile::TempDir,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            bin: chromium(),
            profile: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str], url: &str) -> std::process::Output {
        // As root Chromium needs --no-sandbox; its own profile keeps parallel tests apart.
        let o = Command::new(&self.bin)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
            .arg(format!("--user-data-dir={}", self.profile.path().display()))
            .args(args)
            .arg(url)
            .env("HOME", self.profile.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "chromium {args:?} {url}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    /// The page's DOM after the browser has parsed and laid it out.
    fn dom(&self, url: &str) -> String {
        String::from_utf8(self.run(&["--dump-dom"], url).stdout).unwrap()
    }

    fn screenshot(&self, url: &str, out: &Path, w: u32, h: u32) -> Image {
        self.run(
            &[&format!("--screenshot={}", out.display()), &format!("--window-size={w},{h}")],
            url,
        );
        Image::read(out)
    }
}

struct Image {
    width: u32,
    height: u32,
    rgb: Vec<[u8; 3]>,
}

impl Image {
    fn read(p: &Path) -> Image {
        let dec = png::Decoder::new(std::fs::File::open(p).unwrap());
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let step = info.color_type.samples();
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        let rgb = buf[..info.buffer_size()].chunks(step).map(|p| [p[0], p[1], p[2]]).collect();
        Image {
            width: info.width,
            height: info.height,
            rgb,
        }
    }
    fn at(&self, x: u32, y: u32) -> [u8; 3] {
        self.rgb[(y * self.width + x) as usize]
    }
    fn count(&self, colour: [u8; 3]) -> usize {
        self.rgb.iter().filter(|&&p| near(p, colour)).count()
    }
}

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(&x, y)| x.abs_diff(y) <= 6)
}

const HEADER: [u8; 3] = [0x23, 0x39, 0x5d];
const ROOT_BOX: [u8; 3] = [0xff, 0xe9, 0xa8];
const INPUT_BOX: [u8; 3] = [0xdb, 0xea, 0xfe];

/// The `href`s of a page's links, in order, without duplicates.
fn links(dom: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    dom.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(|h| h.replace("&amp;", "&"))
        .filter(|h| seen.insert(h.clone()))
        .collect()
}

fn get(url: &str) -> (u16, String, String) {
    match ureq::get(url).call() {
        Ok(r) => {
            let ct = r.header("Content-Type").unwrap_or("").to_string();
            (r.status(), ct, r.into_string().unwrap_or_default())
        }
        Err(ureq::Error::Status(code, r)) => (code, String::new(), r.into_string().unwrap_or_default()),
        Err(e) => panic!("{url}: {e}"),
    }
}

#[test]
fn a_browser_sees_the_store_follows_every_link_and_no_markup_from_a_build_runs() {
    let f = Fixture::new();
    let (_server, base) = serve(&f);
    let browser = Browser::new();
    let shots: PathBuf = f.root().join("shots");
    std::fs::create_dir_all(&shots).unwrap();

    // The index: the release, every entry with its name, version, target, size and licence.
    let index = browser.dom(&format!("{base}/"));
    assert!(index.contains("<title>store · spy</title>"), "{index}");
    assert!(index.contains(">fused-x86_64</a>"), "the release is listed by its release name");
    for name in ["fused", "interp", "libz", "hello", "libgreet", "other", "stage0"] {
        assert!(index.contains(&format!(">{name}</a>")), "{name} is listed");
    }
    assert!(index.contains("x86_64-linux-musl") && index.contains(" kB<") || index.contains(" B<"));
    // The hostile licence is text: escaped in the DOM, no <img> element was made of it.
    assert!(index.contains("MIT &lt;img src=x onerror="), "{index}");
    assert!(!index.contains("<img"), "{index}");

    // Follow every link of the index, and every link of every page it leads to, once.
    let mut to_visit: Vec<String> = links(&index);
    let mut visited = BTreeSet::new();
    let mut pages = 0;
    while let Some(href) = to_visit.pop() {
        assert!(href.starts_with('/'), "links stay on the server: {href}");
        if !visited.insert(href.clone()) {
            continue;
        }
        let url = format!("{base}{href}");
        let (status, ct, body) = get(&url);
        assert_eq!(status, 200, "{href} is broken");
        if ct.starts_with("text/html") {
            let dom = browser.dom(&url);
            assert!(dom.contains("<h1>"), "{href} renders: {dom}");
            assert!(!dom.contains("<title>pwned") && !dom.contains("<script"), "{href}: {dom}");
            to_visit.extend(links(&dom));
            pages += 1;
        } else if href.ends_with("/log") {
            assert!(ct.starts_with("text/plain"), "{href}: {ct}");
        } else if href.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(&body).unwrap_or_else(|e| panic!("{href}: {e}"));
        } else if href.ends_with(".svg") {
            assert_eq!(ct, "image/svg+xml", "{href}");
            assert!(body.contains("<svg"), "{href}");
        } else {
            panic!("{href}: unexpected {ct}");
        }
    }
    // 7 entries, each with its page and closure, plus the index.
    assert_eq!(pages, 15, "followed {visited:?}");
    assert!(visited.contains("/spy-cache.json"));

    // The hostile build's log is served as text only (and the browser is told not to guess).
    let other = visited
        .iter()
        .find(|h| h.contains("-other-1") && h.ends_with("/log"))
        .expect("other's log is linked");
    let r = ureq::get(&format!("{base}{other}")).call().unwrap();
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    assert!(r.header("Content-Security-Policy").unwrap().contains("default-src 'none'"));
    assert!(r.into_string().unwrap().contains("<script>document.title=\"pwned\"</script>"));
    let log_dom = browser.dom(&format!("{base}{other}"));
    assert!(!log_dom.contains("<title>pwned"), "{log_dom}");

    // What a person sees: the index has its dark header band and rows of dark text below it.
    let img = browser.screenshot(&format!("{base}/"), &shots.join("index.png"), 1200, 800);
    assert_eq!((img.width, img.height), (1200, 800));
    assert!((0..img.width).all(|x| near(img.at(x, 10), HEADER)), "the header band is drawn");
    let inked = (60..img.height)
        .filter(|&y| (0..img.width).any(|x| img.at(x, y).iter().all(|&c| c < 100)))
        .count();
    assert!(inked > 100, "only {inked} rows below the header have text");

    // The release's dependency graph: one highlighted box for the release, one box per input.
    let release = visited
        .iter()
        .find(|h| h.contains("-fused-") && h.ends_with("/graph.svg"))
        .expect("the graph is linked");
    let svg = browser.screenshot(&format!("{base}{release}"), &shots.join("graph.png"), 1400, 700);
    let root_px = svg.count(ROOT_BOX);
    let input_px = svg.count(INPUT_BOX);
    // A box is 210x42 px, less its border and text.
    assert!((5_000..9_000).contains(&root_px), "the release's box: {root_px} px");
    let (_, _, svg_text) = get(&format!("{base}{release}"));
    let boxes = svg_text.matches("<rect").count();
    assert!(boxes >= 4, "fused, interp, libz, stage0...: {boxes}");
    assert!(input_px > 5_000 * (boxes - 1), "{} input boxes drawn: {input_px} px", boxes - 1);
}

/// The status of a GET of `path` exactly as given.
fn raw_status(base: &str, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{path}: {reply}"))
}

#[test]
fn bad_paths_are_404_and_writes_are_refused() {
    let f = Fixture::new();
    let (_server, base) = serve(&f);
    // Sent as written: an HTTP client library would normalise the dots away before they arrive.
    for p in [
        "/entry/../../etc/passwd",
        "/entry/nothing",
        "/entry/%2e%2e/%2e%2e/etc/passwd",
        "/etc/passwd",
        "/archives/../x",
        "/entry/",
        "/entry/..%2f..%2fetc",
    ] {
        assert_eq!(raw_status(&base, p), 404, "{p}");
    }
    let e = ureq::put(&format!("{base}/")).send_string("x").unwrap_err();
    assert!(matches!(e, ureq::Error::Status(405, _)), "{e}");
    let (status, ct, body) = get(&format!("{base}/spy-cache.json"));
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["read_only"], true);
    assert_eq!(info["entries"], 7);
}
