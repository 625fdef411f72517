//! What the user asked for on the command line: `NAME` or `NAME==VERSION`.

use crate::WithError;

/// One `--with` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// As typed, for messages.
    pub spec: String,
    /// Normalized (PEP 503).
    pub name: String,
    pub version: Option<String>,
}

impl Request {
    pub fn parse(spec: &str) -> Result<Request, WithError> {
        let bad = |why: &str| WithError::BadRequest {
            spec: spec.into(),
            why: why.into(),
        };
        let (name, version) = match spec.split_once("==") {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (spec.trim(), None),
        };
        if name.contains(['<', '>', '~', '!', '=', '[', ';', '@', ' ']) {
            return Err(bad(
                "only `NAME` or `NAME==VERSION`: spy compiles one pinned sdist per package (no ranges, extras or markers)",
            ));
        }
        if !name_ok(name) {
            return Err(bad("a project name is letters and digits, with `.`, `_` or `-` between them"));
        }
        if let Some(v) = version {
            if !version_ok(v) {
                return Err(bad(
                    "a version is letters, digits and `.`, `+`, `_`, `-`, starting with a digit (as PyPI's file names have it)",
                ));
            }
        }
        Ok(Request {
            spec: spec.into(),
            name: normalize(name),
            version: version.map(str::to_string),
        })
    }

    /// The requirement pip's finder gets.
    pub fn requirement(&self) -> String {
        match &self.version {
            Some(v) => format!("{}=={v}", self.name),
            None => self.name.clone(),
        }
    }
}

fn name_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 100
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

/// PEP 503: lowercase, each run of `-`, `_`, `.` one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

pub(crate) fn is_normalized(s: &str) -> bool {
    name_ok(s) && normalize(s) == s
}

/// A version that can be part of a node name and a `NAME==VERSION` requirement (PEP 440 versions
/// without an epoch: `7.2.2`, `2.0rc1`, `1.0.post1`, `1.0+local`).
pub(crate) fn version_ok(s: &str) -> bool {
    spy_recipe::Version::is_valid(s)
        && s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || b".+_-".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_pins() {
        let r = Request::parse("Foo.Bar_baz==1.2.post1").unwrap();
        assert_eq!((r.name.as_str(), r.version.as_deref()), ("foo-bar-baz", Some("1.2.post1")));
        assert_eq!(r.requirement(), "foo-bar-baz==1.2.post1");
        let r = Request::parse("ujson").unwrap();
        assert_eq!((r.name.as_str(), r.version), ("ujson", None));
        for bad in [
            "",
            "ujson>=5",
            "ujson[extra]",
            "ujson; python_version>'3'",
            "-e",
            "../x",
            "a==",
            "a==1 2",
            "a==1!2.0",
            "a==../1",
            "ujson~=5.0",
            "x @ file:///etc/passwd",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad}");
        }
        assert!(is_normalized("foo-bar") && !is_normalized("Foo") && !is_normalized("foo_bar"));
    }
}
