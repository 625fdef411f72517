//! The version of what spy-build's realizers make observable to a build: the sandbox layout, the
//! variables, the phase driver. It is part of every node's id (spy-plan compiles this file in by
//! path, since this crate depends on spy-plan): bump it with any change a build could see, and
//! everything is rebuilt.

/// Version of the builder's observable behaviour (sandbox layout, variables, phase driver).
pub const BUILDER_VERSION: u32 = 2;
