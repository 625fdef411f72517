//! Store entry names: `<first 32 hex digits of the id>-<name>-<version>`, always one path
//! component. Made here, from an id and a recipe's (already validated) name and version, or parsed
//! from text the store did not write itself (metadata, cache metadata); no other crate formats or
//! splits one.

use std::fmt;

use serde::{Deserialize, Serialize};
use spy_hash::NodeId;

use crate::StoreError;

/// Hex digits of the id that start an entry's name.
pub const PREFIX_LEN: usize = 32;

/// The directory name of a store entry (`<id32>-<name>-<version>`), checked to be one path
/// component without `..`, so it can be joined below the store root.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StoreName(String);

impl StoreName {
    /// The entry name of node `id` for a recipe's `name` and `version`.
    pub fn new(id: &NodeId, name: &str, version: &str) -> Result<StoreName, StoreError> {
        // Built in one allocation, not through `format!` and `parse`'s copy: a resolve names
        // every node, and so does `spy list`.
        let mut hex = [0; PREFIX_LEN];
        spy_hash::write_hex(&id.0[..PREFIX_LEN / 2], &mut hex);
        let mut text = String::with_capacity(PREFIX_LEN + 2 + name.len() + version.len());
        text.push_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"));
        for part in [name, version] {
            text.push('-');
            text.push_str(part);
        }
        StoreName::try_from(text)
    }

    /// Checks text that claims to be an entry name.
    pub fn parse(s: &str) -> Result<StoreName, StoreError> {
        if is_entry_name(s) {
            Ok(StoreName(s.to_string()))
        } else {
            Err(StoreError::BadEntryName(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id prefix the name starts with.
    pub fn id_prefix(&self) -> &str {
        &self.0[..PREFIX_LEN]
    }

    /// Whether the name was made for node `id`.
    pub fn is_for(&self, id: &NodeId) -> bool {
        id.to_hex().starts_with(self.id_prefix())
    }
}

impl fmt::Display for StoreName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StoreName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl TryFrom<String> for StoreName {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, StoreError> {
        if is_entry_name(&s) {
            Ok(StoreName(s))
        } else {
            Err(StoreError::BadEntryName(s))
        }
    }
}

impl From<StoreName> for String {
    fn from(n: StoreName) -> String {
        n.0
    }
}

impl PartialEq<str> for StoreName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// The id prefix of an entry-like name (`<32 hex>-…`), or `None`.
pub(crate) fn entry_prefix(name: &str) -> Option<&str> {
    (name.len() > PREFIX_LEN + 1 && name.as_bytes()[PREFIX_LEN] == b'-' && name[..PREFIX_LEN].bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| &name[..PREFIX_LEN])
}

/// Whether `name` can be an entry's directory name: `<32 hex>-…`, one path component of at most
/// 255 bytes, no `..`, no control characters.
fn is_entry_name(name: &str) -> bool {
    let b = name.as_bytes();
    // One pass over the bytes, without early exits (the compiler vectorizes it).
    let plain = b.iter().fold(true, |ok, &c| ok & (c != b'/') & !c.is_ascii_control());
    entry_prefix(name).is_some() && name.len() <= 255 && plain && !name.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_component_and_keep_their_text() {
        let id = NodeId([0xab; 32]);
        let n = StoreName::new(&id, "zlib", "1.3.1").unwrap();
        assert_eq!(n.as_str(), format!("{}-zlib-1.3.1", "ab".repeat(16)));
        assert!(n.is_for(&id) && !n.is_for(&NodeId([1; 32])));
        assert_eq!(serde_json::to_string(&n).unwrap(), format!("\"{n}\""));
        assert_eq!(serde_json::from_str::<StoreName>(&format!("\"{n}\"")).unwrap(), n);
        for bad in [
            format!("{}-x-1/../../victim", "7".repeat(32)),
            format!("{}-..", "7".repeat(32)),
            format!("{}-x-{}", "7".repeat(32), "v".repeat(250)),
            format!("{}-x\n-1", "7".repeat(32)),
            "victim".to_string(),
            format!("{}x-1", "7".repeat(32)),
        ] {
            assert!(matches!(StoreName::parse(&bad), Err(StoreError::BadEntryName(_))), "{bad}");
            assert!(serde_json::from_str::<StoreName>(&format!("{bad:?}")).is_err(), "{bad}");
        }
        assert!(StoreName::new(&id, "a/b", "1").is_err());
    }
}
