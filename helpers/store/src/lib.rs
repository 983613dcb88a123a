//! sdme-store: `/var/lib/sdme` — its layout (content-addressed layers,
//! image generations, containers' writable layers, volumes, connector
//! directories), the image records, the image configuration as sdme keeps
//! it (checked at its one boundary, [`runconfig`]), the merged read-only view
//! of a stack of layers, the store lock, gc and containers' user-namespace
//! ranges ([`userns`]).
//!
//! It may call `sdme-unitfile` (one name rule) and `sdme-launch` (the
//! id-range rule); it must never fetch, unpack
//! or run anything, and writes only below the store root it is given.

pub mod gc;
mod kind;
mod layout;
pub mod merged;
pub mod record;
pub mod runconfig;
pub mod userns;

pub use kind::Kind;
pub use layout::*;
