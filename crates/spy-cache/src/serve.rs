//! `spy serve`: a store, read-only, as an HTTP binary cache. An entry is packed the first time a
//! client asks for its metadata, into a cache directory of the server's own (by default inside the
//! store's `.spy/`), and served from there afterwards; the store itself is never written.

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
                    server.answer(req);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

impl Server {
    fn answer(&self, req: tiny_http::Request) {
        let method = req.method().clone();
        let path = req.url().split('?').next().unwrap_or("").trim_start_matches('/').to_string();
        if method != tiny_http::Method::Get && method != tiny_http::Method::Head {
            let _ = req.respond(tiny_http::Response::from_string("this cache is read-only\n").with_status_code(405));
            return;
        }
        let result = if path == "spy-cache.json" {
            let info = serde_json::json!({ "format": crate::CACHE_FORMAT, "read_only": true });
            Ok(Some(tiny_http::Response::from_string(info.to_string()).boxed()))
        } else if let Some(id) = path.strip_prefix("meta/").and_then(|p| p.strip_suffix(".json")) {
            self.meta(id)
        } else if path.starts_with("archives/") && !path.contains("..") && !path[9..].contains('/') {
            self.file(&path)
        } else {
            Ok(None)
        };
        let resp = match result {
            Ok(Some(r)) => r,
            Ok(None) => tiny_http::Response::from_string("not found\n").with_status_code(404).boxed(),
            Err(e) => {
                eprintln!("spy serve: {path}: {e}");
                tiny_http::Response::from_string(format!("{e}\n")).with_status_code(500).boxed()
            }
        };
        let _ = req.respond(resp);
    }

    fn file(&self, rel: &str) -> Result<Option<tiny_http::ResponseBox>, crate::CacheError> {
        let p = self.opts.cache_dir.join(rel);
        // A FIFO planted in the cache directory must not hang a worker.
        match crate::backend::open_regular(&p) {
            Ok(f) => Ok(Some(tiny_http::Response::from_file(f).boxed())),
            Err(_) => Ok(None),
        }
    }

    fn meta(&self, id: &str) -> Result<Option<tiny_http::ResponseBox>, crate::CacheError> {
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
        self.file(&crate::meta_path(&id))
    }
}
