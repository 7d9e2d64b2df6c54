//! The `warden` subcommands, one file each.

pub mod inspect;
