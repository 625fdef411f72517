use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a recipe file: `graph/zlib.toml:12`.
pub struct At<'a>(pub &'a Path, pub Option<usize>);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(l) => write!(f, "{}:{}", self.0.display(), l),
            None => write!(f, "{}", self.0.display()),
        }
    }
}

/// `key `a.b`: ` before a message, when the key is known.
pub struct KeyPrefix<'a>(pub &'a Option<String>);

impl fmt::Display for KeyPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(k) => write!(f, "key `{k}`: "),
            None => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("cannot read {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("{}: {}{message}", At(file, *line), KeyPrefix(key))]
    Parse {
        file: PathBuf,
        line: Option<usize>,
        /// The dotted key the parser was reading (`sources.file`), when it says.
        key: Option<String>,
        message: String,
    },
    #[error("{}: key `{key}`: {message}", At(file, *line))]
    Invalid {
        file: PathBuf,
        line: Option<usize>,
        key: String,
        message: String,
    },
    #[error("{}: key `{key}`: unknown target `{target}` (known: {})", At(file, *line), known.join(", "))]
    UnknownTarget {
        file: PathBuf,
        line: Option<usize>,
        key: String,
        target: String,
        known: Vec<String>,
    },
    #[error("{}: node `{node}`, key `{key}`: no node named `{dep}`", At(file, *line))]
    MissingDep {
        file: PathBuf,
        line: Option<usize>,
        node: String,
        key: String,
        dep: String,
    },
    #[error("node `{name}` is defined twice: {} and {}", first.display(), second.display())]
    Duplicate { name: String, first: PathBuf, second: PathBuf },
    #[error("no node named `{name}`")]
    UnknownNode { name: String },
    #[error("{}: overlay names node `{node}`, which the graph does not have (a misspelt name? to add a node, give it a `version`)", At(file, *line))]
    UnknownOverlayNode { file: PathBuf, line: Option<usize>, node: String },
}

impl RecipeError {
    pub(crate) fn parse(file: &Path, text: &str, e: &toml::de::Error) -> Self {
        // A refused value inside a list or table: its own line, not the line the list starts on.
        let value = e
            .message()
            .strip_prefix('`')
            .and_then(|m| m.split_once("` is not a valid"))
            .map(|(v, _)| v);
        let at = e.span().map(|s| {
            let (start, end) = (s.start.min(text.len()), s.end.min(text.len()));
            let within = text.get(start..end).unwrap_or_default();
            let found = value.filter(|v| !v.is_empty()).and_then(|v| {
                within
                    .find(&format!("\"{v}\""))
                    .or_else(|| within.find(&format!("'{v}'")))
                    .or_else(|| within.find(v))
            });
            match found {
                Some(i) => start + i,
                None => start,
            }
        });
        let line = at.map(|a| text[..a].matches('\n').count() + 1);
        RecipeError::Parse {
            file: file.to_path_buf(),
            line,
            key: error_key(e),
            message: e.message().trim().to_string(),
        }
    }
}

/// The dotted key a toml error is about. The crate keeps it private but prints it as a last line
/// ``in `a.b` `` when the error carries no input, which is what this reads.
fn error_key(e: &toml::de::Error) -> Option<String> {
    let mut bare = e.clone();
    bare.set_input(None);
    let text = bare.to_string();
    let last = text.trim_end().lines().last()?;
    let key = last.strip_prefix("in `")?.strip_suffix('`')?;
    (!key.is_empty() && !e.message().trim_end().ends_with(last)).then(|| key.to_string())
}
