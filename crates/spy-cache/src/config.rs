//! Where substituters and trusted keys come from: the command line first, then the user's config
//! file, then the graph's `spy.toml`. Each list keeps that order; a URL named twice is asked once.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::{CacheError, PublicKey, Substituters};

/// One source of settings, highest precedence first in [`substituters`].
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    #[serde(default)]
    pub substituters: Vec<String>,
    #[serde(default, rename = "trusted-public-keys")]
    pub trusted_public_keys: Vec<String>,
}

/// The user's config file: `$SPY_CONFIG`, else `$XDG_CONFIG_HOME/spy/config.toml`, else
/// `$HOME/.config/spy/config.toml` (`env` reads the environment).
pub fn user_config_path(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    if let Some(p) = env("SPY_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("spy").join("config.toml"))
}

/// The user's config (the same `substituters` and `trusted-public-keys` keys as spy.toml). A
/// missing file is an empty config, unless `$SPY_CONFIG` names it.
pub fn user_config(env: impl Fn(&str) -> Option<OsString>) -> Result<Layer, CacheError> {
    let named = env("SPY_CONFIG").is_some();
    let Some(p) = user_config_path(env) else {
        return Ok(Layer::default());
    };
    let err = |message: String| CacheError::Config { path: p.clone(), message };
    match std::fs::read_to_string(&p) {
        Ok(text) => toml::from_str(&text).map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => Ok(Layer::default()),
        Err(e) => Err(err(e.to_string())),
    }
}

/// The substituters of `layers` (highest precedence first) and the keys they trust; `None` when
/// no cache is named. `offline` leaves out network caches. `warn` hears about caches without any
/// trusted key (every entry would be refused).
pub fn substituters(layers: &[&Layer], offline: bool, warn: impl Fn(&str)) -> Result<Option<Substituters>, CacheError> {
    let (urls, keys) = merge(layers, offline);
    if urls.is_empty() {
        return Ok(None);
    }
    let keys = keys.iter().map(|k| PublicKey::from_arg(k)).collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        warn("warning: substituters are set but no trusted-public-keys: every cache entry will be refused");
    }
    Ok(Some(Substituters::new(&urls, keys)?))
}

/// The URLs (in order, each once; without http(s) ones when `offline`) and keys of `layers`.
fn merge(layers: &[&Layer], offline: bool) -> (Vec<String>, Vec<String>) {
    let mut urls: Vec<String> = Vec::new();
    for u in layers.iter().flat_map(|l| &l.substituters) {
        if !urls.contains(u) && !(offline && (u.starts_with("http://") || u.starts_with("https://"))) {
            urls.push(u.clone());
        }
    }
    let keys = layers.iter().flat_map(|l| l.trusted_public_keys.iter().cloned()).collect();
    (urls, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(urls: &[&str], keys: &[&str]) -> Layer {
        Layer {
            substituters: urls.iter().map(|s| s.to_string()).collect(),
            trusted_public_keys: keys.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn layers_keep_their_precedence_and_urls_are_asked_once() {
        let cli = layer(&["file:///a", "https://c.example"], &["k1"]);
        let user = layer(&["file:///b", "file:///a"], &["k2"]);
        let graph = layer(&["https://d.example"], &["k3", "k1"]);
        let (urls, keys) = merge(&[&cli, &user, &graph], false);
        assert_eq!(urls, ["file:///a", "https://c.example", "file:///b", "https://d.example"]);
        assert_eq!(keys, ["k1", "k2", "k3", "k1"]);
        let (urls, _) = merge(&[&cli, &user, &graph], true);
        assert_eq!(urls, ["file:///a", "file:///b"]);
    }

    #[test]
    fn no_cache_means_no_substituters_and_keyless_caches_warn() {
        let warned = std::cell::RefCell::new(Vec::new());
        let warn = |m: &str| warned.borrow_mut().push(m.to_string());
        assert!(substituters(&[&layer(&[], &["x"])], false, warn).unwrap().is_none());
        assert!(substituters(&[&layer(&["https://c.example"], &[])], true, warn).unwrap().is_none());
        assert!(warned.borrow().is_empty());
        let d = tempfile::tempdir().unwrap();
        let url = format!("file://{}", d.path().display());
        let s = substituters(&[&layer(&[&url], &[])], false, warn).unwrap().unwrap();
        assert_eq!(s.url(0), url);
        assert_eq!(warned.borrow().len(), 1);
        // A bad key is an error naming it.
        let e = substituters(&[&layer(&[&url], &["nonsense"])], false, warn).err().unwrap();
        assert!(e.to_string().contains("nonsense"), "{e}");
    }

    #[test]
    fn the_user_config_is_found_through_the_environment() {
        let d = tempfile::tempdir().unwrap();
        let env_of = |pairs: Vec<(&'static str, OsString)>| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        let home = d.path().join("home");
        assert_eq!(
            user_config_path(env_of(vec![("HOME", home.clone().into())])),
            Some(home.join(".config/spy/config.toml"))
        );
        let xdg = d.path().join("xdg");
        assert_eq!(
            user_config_path(env_of(vec![("HOME", home.clone().into()), ("XDG_CONFIG_HOME", xdg.clone().into())])),
            Some(xdg.join("spy/config.toml"))
        );
        assert_eq!(user_config_path(env_of(vec![])), None);
        // Missing: empty, unless named by SPY_CONFIG.
        assert!(user_config(env_of(vec![("HOME", home.clone().into())]))
            .unwrap()
            .substituters
            .is_empty());
        let named = d.path().join("spy.toml");
        let e = user_config(env_of(vec![("SPY_CONFIG", named.clone().into())])).err().unwrap();
        assert!(e.to_string().starts_with(&format!("user config {}: ", named.display())), "{e}");
        std::fs::write(&named, "substituters = [\"file:///x\"]\ntrusted-public-keys = [\"k\"]\n").unwrap();
        let l = user_config(env_of(vec![("SPY_CONFIG", named.clone().into())])).unwrap();
        assert_eq!(
            (l.substituters, l.trusted_public_keys),
            (vec!["file:///x".to_string()], vec!["k".to_string()])
        );
        std::fs::write(&named, "substituter = []\n").unwrap();
        assert!(user_config(env_of(vec![("SPY_CONFIG", named.into())])).is_err());
    }
}
