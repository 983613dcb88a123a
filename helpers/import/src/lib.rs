//! sdme-import's library: the image store, the import pipeline, the
//! in-container layout ("glue") and the container launcher `sdme-nspawn`.

pub mod classify;
pub mod fetch;
pub mod gc;
pub mod glue;
pub mod importer;
pub mod install;
pub mod launcher;
pub mod merged;
pub mod notify;
pub mod passwd;
pub mod record;
pub mod runconfig;
pub mod store;
pub mod units;
