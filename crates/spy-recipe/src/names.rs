//! Validated names and paths. Every recipe value that ends up in a file name or a path (a node's
//! name and version make its store entry's name; a source's file name, a patch, a tool, a fuse
//! node's paths name files) is one of these types, checked when its file is parsed, so a hostile
//! or mistyped value is an error with the file, the line and the key before anything touches a
//! disk. Values that become command arguments (Debian and PyPI requirements, URLs) are checked
//! here too, by the functions at the end, so that none can pass for an option.
//!
//! The grammars:
//!
//! | type | grammar |
//! |---|---|
//! | [`NodeName`], [`Version`], [`TargetName`] | `[A-Za-z0-9][A-Za-z0-9._+-]*`, no `..`, at most 128 bytes |
//! | [`FileName`] | one path component: `[A-Za-z0-9_][A-Za-z0-9._+,=@%~-]*`, no `..`, at most 255 bytes |
//! | [`ToolName`] | a [`FileName`], or `[` (test's other name) |
//! | [`VarName`] | a shell variable: `[A-Za-z_][A-Za-z0-9_]*`, at most 128 bytes |
//! | [`RelPath`] | `/`-separated components, each a [`FileName`] but also allowing a leading `.` (`.libs`), never `.` or `..`; not absolute; at most 1024 bytes |

use std::fmt;
use std::ops::Deref;
use std::path::Path;

/// A value that is not valid where it was written: what it was, the value, and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {what}: {rule}")]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
    pub rule: &'static str,
}

const ID_RULE: &str = "use letters, digits and `.`, `_`, `+`, `-`, starting with a letter or digit, without `..` (at most 128 bytes)";
const FILE_RULE: &str =
    "a single file name: letters, digits and `._+,=@%~-`, starting with a letter, digit or `_`, without `/` or `..` (at most 255 bytes)";
const TOOL_RULE: &str = "a program name found in /usr/local/bin, /usr/bin or /bin: a single file name (letters, digits and `._+,=@%~-`, starting with a letter, digit or `_`), or `[`";
const VAR_RULE: &str = "letters, digits and `_`, not starting with a digit (at most 128 bytes)";
const REL_RULE: &str = "a relative path of plain names (letters, digits, `._+,=@%~-`) separated by single `/`, without `.` or `..` components (at most 1024 bytes)";

fn id_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || b"._+-".contains(&c))
        && !s.contains("..")
}

fn component_ok(s: &str, leading_dot: bool) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 255
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_' || (leading_dot && b[0] == b'.' && b.len() > 1))
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || b"._+,=@%~-".contains(&c))
        && !s.contains("..")
}

fn file_ok(s: &str) -> bool {
    component_ok(s, false)
}

fn tool_ok(s: &str) -> bool {
    s == "[" || file_ok(s)
}

fn var_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

fn rel_ok(s: &str) -> bool {
    s.len() <= 1024 && !s.is_empty() && s.split('/').all(|c| component_ok(c, true))
}

macro_rules! validated {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:ident, $rule:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The value, if it follows the grammar.
            pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                if $check(&s) {
                    Ok(Self(s))
                } else {
                    Err(NameError {
                        what: $what,
                        value: s,
                        rule: $rule,
                    })
                }
            }
            /// Whether `s` follows the grammar.
            pub fn is_valid(s: &str) -> bool {
                $check(s)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::new(s)
            }
        }
        impl TryFrom<&str> for $name {
            type Error = NameError;
            fn try_from(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }
        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }
        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }
        impl PartialEq<str> for $name {
            fn eq(&self, o: &str) -> bool {
                self.0 == o
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, o: &&str) -> bool {
                self.0 == *o
            }
        }
        impl PartialEq<String> for $name {
            fn eq(&self, o: &String) -> bool {
                &self.0 == o
            }
        }
        impl PartialEq<$name> for String {
            fn eq(&self, o: &$name) -> bool {
                *self == o.0
            }
        }
        impl PartialEq<$name> for str {
            fn eq(&self, o: &$name) -> bool {
                self == o.0
            }
        }
        impl PartialEq<$name> for &str {
            fn eq(&self, o: &$name) -> bool {
                *self == o.0
            }
        }
    };
}

validated!(
    /// A node's name: part of its store entry's name (`<id>-<name>-<version>`), of variables and
    /// of release file names.
    NodeName,
    "node name",
    id_ok,
    ID_RULE
);
validated!(
    /// A node's version: part of its store entry's name.
    Version,
    "version",
    id_ok,
    ID_RULE
);
validated!(
    /// A target or target family (`x86_64-linux-musl`, `darwin`) or a target's short name
    /// (`x86_64`, part of release names).
    TargetName,
    "target name",
    id_ok,
    ID_RULE
);
validated!(
    /// One path component: a source's file name (in the source cache, the build directory and the
    /// mirrors).
    FileName,
    "file name",
    file_ok,
    FILE_RULE
);
validated!(
    /// A host tool of a bootstrap node: looked up as `/usr/bin/<tool>`, linked as `bin/<tool>`.
    ToolName,
    "tool name",
    tool_ok,
    TOOL_RULE
);
validated!(
    /// A shell variable name (a source's `var`).
    VarName,
    "variable name",
    var_ok,
    VAR_RULE
);
validated!(
    /// A relative path below a directory that the recipe does not choose: a patch or local file
    /// below the recipe's directory, a fuse node's executable or stdlib below the interpreter's
    /// entry, an overlay below the project. It cannot name anything above that directory.
    RelPath,
    "relative path",
    rel_ok,
    REL_RULE
);

impl AsRef<Path> for RelPath {
    fn as_ref(&self) -> &Path {
        Path::new(&self.0)
    }
}
impl AsRef<Path> for FileName {
    fn as_ref(&self) -> &Path {
        Path::new(&self.0)
    }
}

// ---- values that become command arguments -------------------------------------------------------

/// No ASCII control character and no whitespace: one word, whatever runs it.
fn one_word(s: &str) -> bool {
    !s.is_empty() && s.len() <= 4096 && !s.bytes().any(|b| b.is_ascii_control() || b == b' ')
}

/// A source URL: `http://`, `https://` or `file://`, one word.
pub fn check_url(s: &str) -> Result<(), NameError> {
    let ok = one_word(s) && ["http://", "https://", "file://"].iter().any(|p| s.starts_with(p));
    ok.then_some(()).ok_or_else(|| NameError {
        what: "source URL",
        value: s.into(),
        rule: "an `http://`, `https://` or `file://` URL without spaces or control characters",
    })
}

/// A git remote: a URL or an absolute path, never something `git` would read as an option.
pub fn check_git_url(s: &str) -> Result<(), NameError> {
    let ok = one_word(s) && !s.starts_with('-');
    ok.then_some(()).ok_or_else(|| NameError {
        what: "git URL",
        value: s.into(),
        rule: "a URL or an absolute path, without spaces or control characters, not starting with `-`",
    })
}

/// A Debian source package, `NAME` or `NAME=VERSION` (Debian's own grammars).
pub fn check_debian(s: &str) -> Result<(), NameError> {
    let (name, version) = s.split_once('=').unwrap_or((s, "1"));
    let nb = name.as_bytes();
    let ok = nb.len() >= 2
        && nb[0].is_ascii_alphanumeric()
        && nb
            .iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+.-".contains(&c))
        && !version.is_empty()
        && version.as_bytes()[0].is_ascii_alphanumeric()
        && version.bytes().all(|c| c.is_ascii_alphanumeric() || b".+~:-".contains(&c));
    ok.then_some(()).ok_or_else(|| NameError {
        what: "Debian source package",
        value: s.into(),
        rule: "`NAME` or `NAME=VERSION` as Debian writes them (lowercase letters, digits, `+.-`)",
    })
}

/// A PyPI requirement pinned to one version, `NAME==VERSION`.
pub fn check_pypi(s: &str) -> Result<(), NameError> {
    let word = |w: &str, extra: &[u8]| {
        w.as_bytes().first().is_some_and(|c| c.is_ascii_alphanumeric())
            && w.bytes().all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
    };
    let ok = s
        .split_once("==")
        .is_some_and(|(name, version)| word(name, b"._-") && word(version, b".+!_-"));
    ok.then_some(()).ok_or_else(|| NameError {
        what: "PyPI requirement",
        value: s.into(),
        rule: "`NAME==VERSION` (letters, digits, `._-` in the name)",
    })
}

/// Serde helpers: the checks above on the fields that keep the `String` type.
pub(crate) mod de {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    pub fn urls<'d, D: Deserializer<'d>>(d: D) -> Result<Vec<String>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        for u in &v {
            super::check_url(u).map_err(D::Error::custom)?;
        }
        Ok(v)
    }
    pub fn git_url<'d, D: Deserializer<'d>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        super::check_git_url(&s).map_err(D::Error::custom)?;
        Ok(s)
    }
    pub fn debian<'d, D: Deserializer<'d>>(d: D) -> Result<Option<String>, D::Error> {
        let s = String::deserialize(d)?;
        super::check_debian(&s).map_err(D::Error::custom)?;
        Ok(Some(s))
    }
    pub fn pypi<'d, D: Deserializer<'d>>(d: D) -> Result<Option<String>, D::Error> {
        let s = String::deserialize(d)?;
        super::check_pypi(&s).map_err(D::Error::custom)?;
        Ok(Some(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_path_syntax() {
        for ok in [
            "zlib",
            "python3.11-interp",
            "3.11.2",
            "2.7.17-slp",
            "host",
            "c++",
            "x86_64-linux-musl",
            "1",
        ] {
            assert!(NodeName::is_valid(ok) && Version::is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "a/b",
            "1/../../victim",
            "..",
            "a..b",
            ".hidden",
            "-rf",
            "a b",
            "a\0b",
            "a\nb",
            "é",
            &"x".repeat(129),
        ] {
            let e = Version::new(bad).unwrap_err();
            assert_eq!((e.what, e.value.as_str()), ("version", bad));
            assert!(e.to_string().contains("is not a valid version"), "{e}");
            assert!(NodeName::new(bad).is_err() && TargetName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_names_are_one_component_and_paths_stay_below() {
        for ok in ["zlib_1.2.13.dfsg.orig.tar.bz2", "Python-3.11.2.tgz", "g++", "_x", "a%20b.tar.gz"] {
            assert!(FileName::is_valid(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "/x", ".x", "-x", "a\\b", "a b", "["] {
            assert!(!FileName::is_valid(bad), "{bad:?}");
        }
        assert!(ToolName::is_valid("[") && ToolName::is_valid("g++") && !ToolName::is_valid("[[") && !ToolName::is_valid("../sh"));
        for ok in ["bin/python3.11", "lib/python3.11", "modules.json", "a/.libs/b", "fix.patch"] {
            assert!(RelPath::is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "/",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/",
            "./a",
            "a/./b",
            "a/..",
            "x\ny",
            "~/x/../..",
        ] {
            assert!(!RelPath::is_valid(bad), "{bad:?}");
        }
        for ok in ["src", "src_1", "_x", "SRC2"] {
            assert!(VarName::is_valid(ok), "{ok}");
        }
        for bad in ["", "1src", "a-b", "PATH=/x", "a b"] {
            assert!(!VarName::is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn command_arguments_cannot_be_options() {
        assert!(check_url("https://example.org/a.tar.gz").is_ok() && check_url("file:///srv/a.tar.gz").is_ok());
        for bad in ["--output=/etc/x", "ftp://x", "https://a b", "/etc/passwd", ""] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_git_url("https://github.com/o/r").is_ok() && check_git_url("/srv/git/r").is_ok());
        assert!(check_git_url("--upload-pack=touch /tmp/x").is_err() && check_git_url("-u").is_err());
        for ok in ["zlib", "xz-utils", "python3.11", "openssl=3.0.20-1~deb12u1"] {
            assert!(check_debian(ok).is_ok(), "{ok}");
        }
        for bad in ["-oDir::Cache=/", "Zlib", "z", "zlib=", "zlib=-x", "a b"] {
            assert!(check_debian(bad).is_err(), "{bad}");
        }
        for ok in ["ziglang==0.15.2", "psutil==6.1.1", "zope.interface==6.2"] {
            assert!(check_pypi(ok).is_ok(), "{ok}");
        }
        for bad in ["psutil", "--index-url=http://evil==1", "psutil>=6", "psutil==", "a b==1"] {
            assert!(check_pypi(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parsing_checks_and_display_pads() {
        #[derive(serde::Deserialize)]
        struct T {
            #[allow(dead_code)]
            v: Version,
        }
        let e = toml::from_str::<T>("v = \"1/../x\"\n").err().unwrap();
        assert!(e.message().contains("`1/../x` is not a valid version"), "{e}");
        assert_eq!(format!("[{:<6}]", TargetName::new("i686").unwrap()), "[i686  ]");
    }
}
