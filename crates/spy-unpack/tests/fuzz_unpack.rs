//! Fuzzing the source unpackers (tar in every compression, zip) with proptest: hostile entry
//! lists (`..`, absolute names, link chains towards a canary, hard links, setuid modes, device
//! nodes), damaged bytes, and plain noise behind each format's magic. No input may panic, change
//! anything outside the destination, or leave a special file, a special bit or an escaping link
//! inside it. `SPY_FUZZ_CASES` sets the number of inputs per format (200 by default),
//! `SPY_FUZZ_SEED` the seed (0); `benches/fuzz-unpack.sh` runs it longer.

#[path = "support/hostile.rs"]
mod hostile;

use hostile::*;
use proptest::prelude::*;
use spy_unpack::{unpack_with, Options};

#[test]
fn fuzz_tar() {
    run(
        "tar",
        200,
        true,
        |canary| (prop::collection::vec(entry(canary), 0..10), damage(), 0u8..4, damage()),
        |(entries, raw_damage, codec, packed_damage), archive, dest| {
            let tar = raw_damage.apply(tar_bytes(entries));
            std::fs::write(archive, packed_damage.apply(compress(*codec, &tar))).unwrap();
            unpack_with(archive, dest, &Options::SOURCE).is_ok()
        },
    );
}

#[test]
fn fuzz_zip() {
    run(
        "zip",
        200,
        true,
        |canary| (prop::collection::vec(entry(canary), 0..10), damage()),
        |(entries, damage), archive, dest| {
            std::fs::write(archive, damage.apply(zip_bytes(entries))).unwrap();
            unpack_with(archive, dest, &Options::SOURCE).is_ok()
        },
    );
}

#[test]
fn fuzz_noise_behind_magic() {
    let magics: [&[u8]; 5] = [b"\x1f\x8b", b"\xfd7zXZ\x00", b"BZh", b"PK\x03\x04", b"PK\x05\x06"];
    run(
        "noise",
        200,
        true,
        |_| (0usize..6, prop::collection::vec(any::<u8>(), 0..2048)),
        |(magic, noise), archive, dest| {
            let mut bytes = match magics.get(*magic) {
                Some(m) => m.to_vec(),
                None => vec![0; 257],
            };
            bytes.extend_from_slice(noise);
            if *magic == 5 {
                bytes.truncate(257);
                bytes.extend_from_slice(b"ustar\x0000");
                bytes.extend_from_slice(noise);
            }
            std::fs::write(archive, bytes).unwrap();
            unpack_with(archive, dest, &Options::SOURCE).is_ok()
        },
    );
}
