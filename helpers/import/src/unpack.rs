//! `sdme-import unpack`.

use std::ffi::OsString;

pub fn main(_args: Vec<OsString>) -> Result<(), String> {
    Err("unpack: not implemented yet".into())
}
