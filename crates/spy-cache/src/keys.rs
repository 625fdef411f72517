//! ed25519 signing keys in Nix's text form: `NAME:BASE64`, the secret holding the 32-byte seed
//! followed by the 32-byte public key, the public key its 32 bytes.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::CacheError;

#[derive(Clone)]
pub struct SecretKey {
    pub name: String,
    key: SigningKey,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PublicKey {
    pub name: String,
    key: VerifyingKey,
}

fn bad_key(what: &str, message: impl Into<String>) -> CacheError {
    CacheError::BadKey {
        key: what.to_string(),
        message: message.into(),
    }
}

fn split_named<'a>(what: &str, text: &'a str) -> Result<(&'a str, Vec<u8>), CacheError> {
    let text = text.trim();
    let (name, data) = text.split_once(':').ok_or_else(|| bad_key(what, "expected NAME:BASE64"))?;
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == ':') {
        return Err(bad_key(what, "the key name must be non-empty, without spaces or ':'"));
    }
    let bytes = B64.decode(data).map_err(|e| bad_key(what, format!("not base64: {e}")))?;
    Ok((name, bytes))
}

impl SecretKey {
    /// A new key from the kernel's random source.
    pub fn generate(name: &str) -> Result<SecretKey, CacheError> {
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == ':' || c == '/') {
            return Err(bad_key(name, "a key name must be non-empty, without spaces, ':' or '/'"));
        }
        let mut seed = [0u8; 32];
        let mut f = std::fs::File::open("/dev/urandom").map_err(|e| bad_key(name, format!("/dev/urandom: {e}")))?;
        std::io::Read::read_exact(&mut f, &mut seed).map_err(|e| bad_key(name, format!("/dev/urandom: {e}")))?;
        Ok(SecretKey {
            name: name.to_string(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn parse(what: &str, text: &str) -> Result<SecretKey, CacheError> {
        let (name, bytes) = split_named(what, text)?;
        let bytes: [u8; 64] = bytes
            .try_into()
            .map_err(|_| bad_key(what, "a secret key holds 64 bytes (is this the public key?)"))?;
        let key = SigningKey::from_keypair_bytes(&bytes).map_err(|e| bad_key(what, e.to_string()))?;
        Ok(SecretKey {
            name: name.to_string(),
            key,
        })
    }

    pub fn load(path: &Path) -> Result<SecretKey, CacheError> {
        let what = path.display().to_string();
        let text = fs_err::read_to_string(path).map_err(|e| bad_key(&what, e.to_string()))?;
        SecretKey::parse(&what, &text)
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// `NAME:BASE64(signature)` of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        format!("{}:{}", self.name, B64.encode(self.key.sign(message).to_bytes()))
    }

    pub fn to_text(&self) -> String {
        format!("{}:{}", self.name, B64.encode(self.key.to_keypair_bytes()))
    }

    /// Writes `NAME.secret` (mode 0600, created new) and `NAME.public` into `dir` (made if
    /// needed); an existing file of either name is never overwritten. Returns both paths.
    pub fn write_pair(&self, dir: &Path) -> Result<(PathBuf, PathBuf), CacheError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let secret = dir.join(format!("{}.secret", self.name));
        let public = dir.join(format!("{}.public", self.name));
        if let Some(p) = [&secret, &public].into_iter().find(|p| p.exists()) {
            return Err(CacheError::KeyExists { path: p.clone() });
        }
        let io = |p: &Path, e: std::io::Error| CacheError::Io {
            path: p.to_path_buf(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&secret)
            .map_err(|e| io(&secret, e))?;
        writeln!(f, "{}", self.to_text()).map_err(|e| io(&secret, e))?;
        std::fs::write(&public, format!("{}\n", self.public().to_text())).map_err(|e| io(&public, e))?;
        Ok((secret, public))
    }
}

/// What a detached signature file says about a file.
#[derive(Debug, PartialEq)]
pub enum FileSignature {
    Good,
    /// By the key's name, but not matching: the file or the signature was changed.
    Bad,
    /// By another key (its name).
    OtherKey(String),
}

impl PublicKey {
    /// Checks `file` against the signature in `signature` (as `spy release --sign` writes it).
    pub fn check_file(&self, file: &Path, signature: &Path) -> Result<FileSignature, CacheError> {
        let read_err = |p: &Path, e: std::io::Error| CacheError::Io {
            path: p.to_path_buf(),
            message: e.to_string(),
        };
        let sig = std::fs::read_to_string(signature).map_err(|e| read_err(signature, e))?;
        let data = std::fs::read(file).map_err(|e| read_err(file, e))?;
        Ok(match self.verify(&data, sig.trim()) {
            Some(true) => FileSignature::Good,
            Some(false) => FileSignature::Bad,
            None => FileSignature::OtherKey(sig.split(':').next().unwrap_or_default().to_string()),
        })
    }

    pub fn parse(what: &str, text: &str) -> Result<PublicKey, CacheError> {
        let (name, bytes) = split_named(what, text)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad_key(what, "a public key holds 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|e| bad_key(what, e.to_string()))?;
        Ok(PublicKey {
            name: name.to_string(),
            key,
        })
    }

    /// A key given on the command line or in a config: its text, or the path of a file holding it.
    pub fn from_arg(arg: &str) -> Result<PublicKey, CacheError> {
        let p = Path::new(arg);
        if !arg.contains(':') && p.is_file() {
            let text = fs_err::read_to_string(p).map_err(|e| bad_key(arg, e.to_string()))?;
            return PublicKey::parse(arg, &text);
        }
        PublicKey::parse(arg, arg)
    }

    pub fn to_text(&self) -> String {
        format!("{}:{}", self.name, B64.encode(self.key.to_bytes()))
    }

    /// Whether `signature` (`NAME:BASE64`) is this key's valid signature of `message`. `None`: the
    /// signature is by another key name.
    pub fn verify(&self, message: &[u8], signature: &str) -> Option<bool> {
        let (name, data) = signature.split_once(':')?;
        if name != self.name {
            return None;
        }
        let ok = B64
            .decode(data)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| self.key.verify(message, &Signature::from_bytes(&b)).is_ok())
            .unwrap_or(false);
        Some(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_roundtrip_and_errors() {
        let k = SecretKey::generate("dev-1").unwrap();
        let text = k.to_text();
        let k2 = SecretKey::parse("t", &text).unwrap();
        let p = PublicKey::parse("t", &k2.public().to_text()).unwrap();
        let sig = k2.sign(b"hello");
        assert_eq!(p.verify(b"hello", &sig), Some(true));
        assert_eq!(p.verify(b"hellO", &sig), Some(false));
        let other = SecretKey::generate("dev-2").unwrap();
        assert_eq!(p.verify(b"hello", &other.sign(b"hello")), None);
        // Same name, other key: a bad signature, not a foreign one.
        let impostor = SecretKey::generate("dev-1").unwrap();
        assert_eq!(p.verify(b"hello", &impostor.sign(b"hello")), Some(false));
        assert!(PublicKey::parse("t", &text).is_err(), "a secret key is not a public key");
        assert!(SecretKey::parse("t", &p.to_text()).is_err());
        assert!(PublicKey::parse("t", "nocolon").is_err());
        assert!(SecretKey::generate("a b").is_err());
    }

    #[test]
    fn key_files_are_written_once_and_files_checked() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("keys");
        let k = SecretKey::generate("rel-1").unwrap();
        let (secret, public) = k.write_pair(&dir).unwrap();
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(SecretKey::load(&secret).unwrap().to_text(), k.to_text());
        let p = PublicKey::from_arg(public.to_str().unwrap()).unwrap();
        assert_eq!(p, k.public());
        // Never overwritten, not even by another key of the same name.
        let again = SecretKey::generate("rel-1").unwrap().write_pair(&dir);
        assert!(matches!(again, Err(CacheError::KeyExists { path }) if path == secret));
        assert_eq!(SecretKey::load(&secret).unwrap().to_text(), k.to_text());

        let (file, sig) = (d.path().join("SUMS"), d.path().join("SUMS.sig"));
        std::fs::write(&file, "data\n").unwrap();
        std::fs::write(&sig, format!("{}\n", k.sign(b"data\n"))).unwrap();
        assert_eq!(p.check_file(&file, &sig).unwrap(), FileSignature::Good);
        std::fs::write(&file, "dat4\n").unwrap();
        assert_eq!(p.check_file(&file, &sig).unwrap(), FileSignature::Bad);
        let other = SecretKey::generate("other-1").unwrap();
        std::fs::write(&sig, other.sign(b"dat4\n")).unwrap();
        assert_eq!(p.check_file(&file, &sig).unwrap(), FileSignature::OtherKey("other-1".into()));
        assert!(p.check_file(&file, &d.path().join("missing.sig")).is_err());
    }
}
