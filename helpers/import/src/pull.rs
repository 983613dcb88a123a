//! `sdme-import pull`.

use std::ffi::OsString;

pub fn main(_args: Vec<OsString>) -> Result<(), String> {
    Err("pull: not implemented yet".into())
}
