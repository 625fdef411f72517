//! Fuzzing what a cache hands to a substituter, with proptest: archives (hostile entry lists,
//! damaged tar bytes, damaged zstd/xz streams, random budgets) through `archive::unpack`, and
//! metadata files (valid ones with fields replaced or dropped, bytes flipped, plain noise) through
//! `CacheMeta::parse`. No input may panic; an archive may not change anything outside its
//! destination, leave special files or bits, or write past its budget; parsed metadata always names
//! the archive path its signed fields imply. `SPY_FUZZ_CASES` / `SPY_FUZZ_SEED` as in spy-fetch's
//! harness (`benches/fuzz-unpack.sh`).

#[path = "../../spy-unpack/tests/support/hostile.rs"]
mod hostile;

use std::io::Write;

use hostile::*;
use proptest::prelude::*;
use spy_cache::archive::{unpack, Compression};
use spy_cache::{archive_path, CacheMeta, CACHE_FORMAT};
use spy_unpack::Limits;

fn pack(zstd: bool, bytes: &[u8]) -> Vec<u8> {
    if zstd {
        zstd::stream::encode_all(bytes, 3).unwrap()
    } else {
        let mut e = xz2::write::XzEncoder::new(Vec::new(), 0);
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }
}

#[test]
fn fuzz_cache_archive() {
    run(
        "cache-archive",
        200,
        // Store entries may hold absolute links; nothing is ever written through one.
        false,
        |canary| {
            (
                prop::collection::vec(entry(canary), 0..10),
                damage(),
                any::<bool>(),
                damage(),
                prop::option::of(0u64..200),
                prop::option::of(0u64..6),
            )
        },
        |(entries, raw_damage, zstd, packed_damage, bytes, files), archive, dest| {
            let tar = raw_damage.apply(tar_bytes(entries));
            std::fs::write(archive, packed_damage.apply(pack(*zstd, &tar))).unwrap();
            let compression = if *zstd { Compression::Zstd } else { Compression::Xz };
            let limits = Limits {
                bytes: *bytes,
                files: *files,
            };
            let f = std::fs::File::open(archive).unwrap();
            let r = unpack(archive, std::io::BufReader::new(f), compression, dest, limits);
            let written = bytes_under(dest);
            assert!(written <= bytes.unwrap_or(u64::MAX), "{written} bytes past a budget of {bytes:?}");
            r.is_ok()
        },
    );
}

/// A valid metadata file as JSON.
fn valid_meta() -> serde_json::Value {
    let sha = spy_hash::Sha256([7; 32]);
    serde_json::json!({
        "format": CACHE_FORMAT,
        "id": spy_hash::NodeId([1; 32]).to_string(),
        "store_name": "0101-x-1",
        "name": "x",
        "version": "1",
        "target": "x86_64-linux-musl",
        "tree_hash": spy_hash::TreeHash([2; 32]).to_string(),
        "size": 3,
        "files": 1,
        "archive": archive_path(&sha, Compression::Zstd),
        "compression": "zstd",
        "archive_sha256": sha.to_string(),
        "archive_size": 5,
        "references": ["0000-dep-1"],
        "signatures": []
    })
}

fn json_value(canary: String) -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        path(canary).prop_map(serde_json::Value::from),
        prop::collection::vec(prop::sample::select(b"abcdef0123456789/.-_".to_vec()), 0..80)
            .prop_map(|b| serde_json::Value::from(String::from_utf8(b).unwrap())),
        Just(serde_json::json!("xz")),
        Just(serde_json::json!(["a", 1, null])),
        Just(serde_json::json!({"k": "v"})),
    ]
}

#[test]
fn fuzz_cache_meta() {
    const FIELDS: [&str; 16] = [
        "format",
        "id",
        "store_name",
        "name",
        "version",
        "target",
        "tree_hash",
        "size",
        "files",
        "archive",
        "compression",
        "archive_sha256",
        "archive_size",
        "references",
        "signatures",
        "extra",
    ];
    run(
        "cache-meta",
        400,
        true,
        |canary| {
            (
                prop::collection::vec((0usize..FIELDS.len(), json_value(canary)), 0..4),
                prop::bool::weighted(0.2),
                damage(),
                prop::collection::vec(any::<u8>(), 0..256),
            )
        },
        |(edits, drop_one, damage, noise), _archive, _dest| {
            let mut v = valid_meta();
            for (i, value) in edits {
                if *drop_one {
                    v.as_object_mut().unwrap().remove(FIELDS[*i]);
                } else {
                    v[FIELDS[*i]] = value.clone();
                }
            }
            let mut text = damage.apply(serde_json::to_vec(&v).unwrap());
            if edits.is_empty() && damage.flips.is_empty() && !noise.is_empty() {
                text = noise.clone();
            }
            match CacheMeta::parse(&text) {
                Ok(m) => {
                    assert_eq!(m.format, CACHE_FORMAT);
                    assert_eq!(m.archive, archive_path(&m.archive_sha256, m.compression));
                    true
                }
                Err(_) => false,
            }
        },
    );
}
