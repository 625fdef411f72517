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

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("cannot read {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("{}: {message}", At(file, *line))]
    Parse {
        file: PathBuf,
        line: Option<usize>,
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
}

impl RecipeError {
    pub(crate) fn parse(file: &Path, text: &str, e: &toml::de::Error) -> Self {
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        RecipeError::Parse {
            file: file.to_path_buf(),
            line,
            message: e.message().trim().to_string(),
        }
    }
}
