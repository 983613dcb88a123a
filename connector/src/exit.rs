//! Exit codes of the client and server binaries (sysexits.h values), beyond
//! the command's own exit status that the client passes through.

/// Bad command line.
pub const USAGE: i32 = 64;
/// No server: the socket is missing or nobody listens (container not running).
pub const UNAVAILABLE: i32 = 69;
/// Protocol failure: malformed reply, connection lost before the exit status.
pub const PROTOCOL: i32 = 70;
/// The connector socket exists but may not be opened by this user.
pub const NO_PERMISSION: i32 = 77;
/// The entrypoint could not be executed (as a shell reports it).
pub const CANNOT_EXECUTE: i32 = 126;
/// The entrypoint was not found.
pub const NOT_FOUND: i32 = 127;
/// Added to a signal number when the command was killed by it.
pub const SIGNAL_BASE: i32 = 128;
