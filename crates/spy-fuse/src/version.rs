//! The version of what spy-fuse writes: what goes into the ZIP, its layout, the manifest. It is
//! part of every fuse node's id (spy-plan compiles this file in by path, since this crate depends
//! on spy-plan): bump it with any change to that output, or stores keep serving the old one.

/// Version of the fuse step's observable behaviour.
pub const FUSE_VERSION: u32 = 10;
