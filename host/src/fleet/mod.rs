//! Several hosts serving one game on one PostgreSQL: membership by leases ([`lease`]). PostgreSQL is the
//! one source of truth; there is no consensus of our own (see `docs/fleet.md`).

pub mod lease;
