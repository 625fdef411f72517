//! ed25519 signing keys in Nix's text form: `NAME:BASE64`, the secret holding the 32-byte seed
//! followed by the 32-byte public key, the public key its 32 bytes.

use std::path::Path;

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
}

impl PublicKey {
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
}
