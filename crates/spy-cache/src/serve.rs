//! `spy serve`: a store, read-only, as an HTTP binary cache and as pages for people. An entry is
//! packed the first time a client asks for its metadata, into a cache directory of the server's own
//! (by default inside the store's `.spy/`), and served from there afterwards; the store itself is
//! never written. Every other path is a page of [`spy_browse`]. Each request is logged on stderr.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use spy_hash::NodeId;
use spy_store::Store;

use crate::backend::FileBackend;
use crate::{Compression, SecretKey};

pub struct ServeOptions {
    pub addr: String,
    pub key: Option<SecretKey>,
    pub compression: Compression,
    /// Where packed archives and metadata are kept.
    pub cache_dir: PathBuf,
    pub threads: usize,
}

struct Server {
    store: Store,
    opts: ServeOptions,
    cache: FileBackend,
    /// One lock per node id being packed, so two clients asking at once pack it once.
    packing: Mutex<HashMap<NodeId, Arc<Mutex<()>>>>,
}

/// Serves until the process is stopped. `ready` is called with the bound address.
pub fn serve(store: Store, opts: ServeOptions, ready: impl FnOnce(&str)) -> Result<(), crate::CacheError> {
    let http = tiny_http::Server::http(&opts.addr).map_err(|e| crate::CacheError::Unreachable {
        url: format!("http://{}", opts.addr),
        message: format!("cannot listen: {e}"),
    })?;
    let bound = http.server_addr().to_string();
    let cache = FileBackend::new(&opts.cache_dir.display().to_string(), &opts.cache_dir)?;
    let server = Arc::new(Server {
        store,
        cache,
        opts,
        packing: Mutex::new(HashMap::new()),
    });
    ready(&bound);
    let http = Arc::new(http);
    let workers: Vec<_> = (0..server.opts.threads.max(1))
        .map(|_| {
            let (http, server) = (http.clone(), server.clone());
            std::thread::spawn(move || {
                while let Ok(req) = http.recv() {
                    // A bug that panics on one request must not take a worker away for good
                    // (the client's connection closes; the panic is printed).
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.answer(req)));
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

type Response = tiny_http::ResponseBox;

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

/// A response of `content_type`. Pages show text builds wrote: no script may ever run, and
/// browsers must not guess another type for a log.
fn typed<R: std::io::Read + Send + 'static>(r: tiny_http::Response<R>, content_type: &str) -> Response {
    r.with_header(header("Content-Type", content_type))
        .with_header(header("X-Content-Type-Options", "nosniff"))
        .with_header(header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'",
        ))
        .boxed()
}

fn text(status: u16, body: String) -> Response {
    typed(
        tiny_http::Response::from_data(body.into_bytes()).with_status_code(status),
        "text/plain; charset=utf-8",
    )
}

impl Server {
    fn answer(&self, req: tiny_http::Request) {
        let started = std::time::Instant::now();
        let method = req.method().clone();
        let url = req.url().to_string();
        let path = url.split('?').next().unwrap_or("").trim_start_matches('/').to_string();
        let resp = if method != tiny_http::Method::Get && method != tiny_http::Method::Head {
            text(405, "this cache is read-only\n".into())
        } else {
            match self.route(&path) {
                Ok(Some(r)) => r,
                Ok(None) => text(404, "not found\n".into()),
                Err(e) => {
                    eprintln!("spy serve: {path}: {e}");
                    text(500, format!("{e}\n"))
                }
            }
        };
        let status = resp.status_code().0;
        let peer = req.remote_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "-".into());
        let _ = req.respond(resp);
        // A URL is the client's text: shown on the operator's terminal only once made harmless.
        let shown: String = url.chars().take(200).map(|c| if c.is_control() { '?' } else { c }).collect();
        eprintln!("{peer} {method} {shown} {status} {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
    }

    fn route(&self, path: &str) -> Result<Option<Response>, String> {
        if path == "spy-cache.json" {
            return Ok(Some(typed(
                tiny_http::Response::from_data(self.info().into_bytes()),
                "application/json",
            )));
        }
        if let Some(id) = path.strip_prefix("meta/").and_then(|p| p.strip_suffix(".json")) {
            return self.meta(id).map_err(|e| e.to_string());
        }
        if let Some(name) = path.strip_prefix("archives/") {
            return Ok(if name.contains("..") || name.contains('/') {
                None
            } else {
                self.file(path)
            });
        }
        Ok(spy_browse::page(&self.store, path).map_err(|e| e.to_string())?.map(|p| match p {
            spy_browse::Page::Html(s) => typed(tiny_http::Response::from_data(s.into_bytes()), "text/html; charset=utf-8"),
            spy_browse::Page::Svg(s) => typed(tiny_http::Response::from_data(s.into_bytes()), "image/svg+xml"),
            spy_browse::Page::File { file, content_type } => typed(tiny_http::Response::from_file(file), content_type),
        }))
    }

    /// The cache-info document (`/spy-cache.json`): what a client needs before asking for entries.
    fn info(&self) -> String {
        let info = serde_json::json!({
            "format": crate::CACHE_FORMAT,
            "read_only": true,
            "signed_by": self.opts.key.as_ref().map(|k| k.name.clone()),
            "compression": self.opts.compression.as_str(),
            "meta": "meta/<node id>.json",
            "entries": self.store.entries().map(|e| e.len()).ok(),
        });
        serde_json::to_string_pretty(&info).expect("json") + "\n"
    }

    fn file(&self, rel: &str) -> Option<Response> {
        let p = self.opts.cache_dir.join(rel);
        // A FIFO planted in the cache directory must not hang a worker.
        let f = crate::backend::open_regular(&p).ok()?;
        let kind = if rel.ends_with(".json") {
            "application/json"
        } else {
            "application/octet-stream"
        };
        Some(typed(tiny_http::Response::from_file(f), kind))
    }

    fn meta(&self, id: &str) -> Result<Option<Response>, crate::CacheError> {
        let Ok(id) = id.parse::<NodeId>() else { return Ok(None) };
        let Some(entry) = self.store.lookup_id(&id)? else {
            return Ok(None);
        };
        let lock = {
            let mut map = self.packing.lock().expect("packing map");
            map.entry(id).or_default().clone()
        };
        let _held = lock.lock().expect("packing lock");
        // `push` packs only what the serve cache lacks (or holds for an older tree hash).
        crate::push(
            &self.store,
            &entry,
            &self.cache,
            self.opts.key.as_ref(),
            self.opts.compression,
            &self.opts.cache_dir,
        )?;
        Ok(self.file(&crate::meta_path(&id)))
    }
}
