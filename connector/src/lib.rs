//! sdme connectors: let a client container run an application's entrypoint
//! in another container through a unix socket (see `man/sdme-connector.1`).
//!
//! `protocol` holds the frames and messages, `transport` moves them and the
//! client's descriptors over a socket; `server` and `client` are the logic
//! behind the two binaries, kept here so they can be tested. Statically
//! linked and run inside application roots, it depends on neither the
//! generator nor the store.

pub mod client;
pub mod exit;
pub mod protocol;
pub mod server;
pub mod transport;
