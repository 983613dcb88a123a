//! sdme-import: `sdme-import pull` (resolve → fetch → classify → glue →
//! commit into the store), `unpack` and `gc`'s command line; and the
//! in-container layout ("glue": the units and `/oci/*` files a container
//! runs its app with), which the launcher reads to write its overrides.
//!
//! It may call the registry client, the extractor, the store and the unit
//! writer. It must never run an image's code on the host (a base's systemd
//! install runs inside a container) and never writes outside the store.

pub mod autoupdate;
pub mod classify;
pub mod cli;
pub mod fetch;
pub mod glue;
pub mod importer;
pub mod install;
pub mod notify;
pub mod passwd;
pub mod units;
