//! The `warden` subcommands, one file each.

pub mod audit;
pub mod bots;
pub mod config_args;
pub mod crashes;
pub mod dev;
pub mod dumps;
pub mod fleet;
pub mod inspect;
pub mod new;
pub mod operate;
pub mod push;
pub mod rooms;
pub mod saves;
pub mod serve;
pub mod sign;
pub mod stamp;
pub mod steer;
pub mod store;
pub mod token;
