//! Connection caps: a global cap and a per-IP cap, held by a guard for the connection's lifetime.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts open connections, globally and per peer IP.
#[derive(Debug)]
pub struct ConnectionCaps {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Held while a connection is open; releases its place when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    caps: Arc<ConnectionCaps>,
    ip: IpAddr,
}

impl ConnectionCaps {
    /// Caps of `max_total` connections, `max_per_ip` from one address.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionCaps { max_total, max_per_ip, open: Mutex::new((0, HashMap::new())) })
    }

    /// A slot for a connection from `ip`, or the reason there is none.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, String> {
        let mut open = self.open.lock().unwrap();
        if open.0 >= self.max_total {
            return Err(format!("the server is at its cap of {} connections; try again later", self.max_total));
        }
        let from_ip = open.1.entry(ip).or_default();
        if *from_ip >= self.max_per_ip {
            return Err(format!("{ip} already has {} connections open, the most one address may have", self.max_per_ip));
        }
        *from_ip += 1;
        open.0 += 1;
        Ok(ConnectionSlot { caps: self.clone(), ip })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap().0
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().unwrap();
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_globally_and_per_ip_and_free_on_drop() {
        let caps = ConnectionCaps::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = caps.acquire(a).unwrap();
        let _s2 = caps.acquire(a).unwrap();
        assert!(caps.acquire(a).unwrap_err().contains("10.0.0.1 already has 2"));
        let _s3 = caps.acquire(b).unwrap();
        assert!(caps.acquire(b).unwrap_err().contains("cap of 3"));
        drop(s1);
        assert_eq!(caps.open(), 2);
        caps.acquire(a).expect("a place was freed");
    }
}
