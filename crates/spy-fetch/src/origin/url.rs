use std::time::Duration;

use spy_plan::Source;
use spy_store::Store;

use super::{sha_of, Origin};
use crate::{Attempt, FetchError};

/// `file://` URLs: a local path.
pub struct FileUrlOrigin;

impl Origin for FileUrlOrigin {
    fn name(&self) -> String {
        "file URL".into()
    }
    fn applies(&self, src: &Source) -> bool {
        sha_of(src).is_some() && src.urls.iter().any(|u| u.starts_with("file://"))
    }
    fn fetch(&self, store: &Store, src: &Source, _log: &dyn Fn(&str)) -> Result<Attempt, FetchError> {
        let Some(expected) = sha_of(src) else {
            return Ok(Attempt::Missed("not a sha256 source".into()));
        };
        let mut misses = Vec::new();
        for u in src.urls.iter().filter(|u| u.starts_with("file://")) {
            let path = std::path::PathBuf::from(&u["file://".len()..]);
            match fs_err::File::open(&path) {
                Ok(f) => return Ok(Attempt::Stored(crate::store_stream(store, f, &src.file, expected, u)?)),
                Err(e) => misses.push(format!("{u}: {e}")),
            }
        }
        Ok(Attempt::Missed(misses.join("; ")))
    }
}

/// `http://` and `https://` URLs, streamed.
pub struct HttpOrigin {
    agent: ureq::Agent,
}

impl HttpOrigin {
    pub fn new() -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(20))
            .timeout_read(Duration::from_secs(120))
            .user_agent(concat!("spy/", env!("CARGO_PKG_VERSION")))
            .build();
        Self { agent }
    }
}

impl Default for HttpOrigin {
    fn default() -> Self {
        Self::new()
    }
}

impl Origin for HttpOrigin {
    fn name(&self) -> String {
        "URL".into()
    }
    fn applies(&self, src: &Source) -> bool {
        sha_of(src).is_some() && src.urls.iter().any(|u| u.starts_with("http://") || u.starts_with("https://"))
    }
    fn fetch(&self, store: &Store, src: &Source, log: &dyn Fn(&str)) -> Result<Attempt, FetchError> {
        let Some(expected) = sha_of(src) else {
            return Ok(Attempt::Missed("not a sha256 source".into()));
        };
        let mut misses = Vec::new();
        for u in src.urls.iter().filter(|u| u.starts_with("http://") || u.starts_with("https://")) {
            log(&format!("fetching {u}"));
            match self.agent.get(u).call() {
                Ok(resp) => match crate::store_stream(store, resp.into_reader(), &src.file, expected, u) {
                    Ok(p) => return Ok(Attempt::Stored(p)),
                    Err(e) => {
                        log(&format!("warning: {e}"));
                        misses.push(e.to_string())
                    }
                },
                Err(e) => misses.push(format!("{u}: {e}")),
            }
        }
        Ok(Attempt::Missed(misses.join("; ")))
    }
}
