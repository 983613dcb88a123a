#![allow(dead_code)] // each test binary uses a different part of these helpers

pub mod image;
pub mod server;
