//! A cache behind an HTTP(S) server: GET to read, PUT to push (nginx with WebDAV, `spy serve` for
//! reading only, or any server that accepts PUT).

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::{check_rel, Backend};
use crate::CacheError;

pub struct HttpBackend {
    url: String,
    base: String,
    agent: ureq::Agent,
}

impl HttpBackend {
    pub fn new(url: &str) -> HttpBackend {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(120))
            .user_agent(concat!("spy/", env!("CARGO_PKG_VERSION")))
            .build();
        HttpBackend {
            url: url.to_string(),
            base: url.trim_end_matches('/').to_string(),
            agent,
        }
    }

    fn full(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    fn error(&self, full: &str, e: ureq::Error) -> CacheError {
        match e {
            ureq::Error::Status(code, resp) => CacheError::Http {
                url: full.to_string(),
                message: format!("HTTP {code} {}", resp.status_text()),
            },
            ureq::Error::Transport(t) => CacheError::Unreachable {
                url: self.url.clone(),
                message: t.to_string(),
            },
        }
    }
}

impl Backend for HttpBackend {
    fn url(&self) -> &str {
        &self.url
    }

    fn get(&self, rel: &str) -> Result<Option<Box<dyn Read + Send>>, CacheError> {
        check_rel(&self.url, rel)?;
        let full = self.full(rel);
        match self.agent.get(&full).call() {
            Ok(resp) => Ok(Some(Box::new(resp.into_reader()))),
            Err(ureq::Error::Status(404 | 410, _)) => Ok(None),
            Err(e) => Err(self.error(&full, e)),
        }
    }

    fn has(&self, rel: &str) -> Result<bool, CacheError> {
        check_rel(&self.url, rel)?;
        let full = self.full(rel);
        match self.agent.head(&full).call() {
            Ok(_) => Ok(true),
            Err(ureq::Error::Status(404 | 410, _)) => Ok(false),
            Err(e) => Err(self.error(&full, e)),
        }
    }

    fn put(&self, rel: &str, from: &Path) -> Result<(), CacheError> {
        check_rel(&self.url, rel)?;
        let full = self.full(rel);
        let f = fs_err::File::open(from).map_err(|e| CacheError::Io {
            path: from.to_path_buf(),
            message: e.to_string(),
        })?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        // An explicit length: the body is streamed from the file, not chunked and not buffered.
        self.agent
            .put(&full)
            .set("Content-Length", &len.to_string())
            .set("Content-Type", "application/octet-stream")
            .send(f)
            .map_err(|e| self.error(&full, e))?;
        Ok(())
    }
}
