//! Uses WASI directly, the way ordinary code does (`println!`, `std::thread::sleep`, a panic with the
//! default hook) and the way hostile code might (polling clocks, reading stdin, opening sockets). Each
//! message is a command; the answer names the command and what came of it. The host must serve every one
//! without blocking its game thread: output goes to the log, waits that could never end are refused.
use std::io::Read;
use std::time::Duration;
use warden_sdk::{Ctx, Game, GameResult};

/// The guest state.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Stdio {
    /// Commands served.
    pub served: u64,
}

fn run(command: &str) -> Result<String, String> {
    use wasip2::clocks::monotonic_clock;
    match command {
        "println" => {
            println!("stdio guest: a line on stdout");
            Ok("printed".into())
        }
        "eprintln" => {
            eprintln!("stdio guest: a line on stderr");
            Ok("printed".into())
        }
        "partial" => {
            print!("no newline yet");
            std::io::Write::flush(&mut std::io::stdout()).map_err(|e| e.to_string())?;
            Ok("printed".into())
        }
        "flood" => {
            for i in 0..5_000 {
                println!("stdio guest: flood line {i}");
            }
            Ok("flooded".into())
        }
        "long-line" => {
            println!("{}", "x".repeat(1 << 20));
            Ok("printed".into())
        }
        "sleep0" => {
            std::thread::sleep(Duration::ZERO);
            Ok("slept".into())
        }
        "sleep" => {
            std::thread::sleep(Duration::from_millis(5));
            Ok("slept".into())
        }
        "ready" => Ok(format!("ready={}", monotonic_clock::subscribe_duration(1_000_000_000).ready())),
        "ready0" => Ok(format!("ready={}", monotonic_clock::subscribe_duration(0).ready())),
        "poll" => {
            let later = monotonic_clock::subscribe_duration(1_000_000_000);
            let now = monotonic_clock::subscribe_duration(0);
            Ok(format!("ready={:?}", wasip2::io::poll::poll(&[&later, &now])))
        }
        "stdin" => {
            let mut buf = Vec::new();
            let n = std::io::stdin().read_to_end(&mut buf).map_err(|e| e.to_string())?;
            Ok(format!("read={n}"))
        }
        "udp" => {
            use wasip2::sockets::{network::IpAddressFamily, udp_create_socket};
            match udp_create_socket::create_udp_socket(IpAddressFamily::Ipv4) {
                Ok(_) => Ok("udp socket opened".into()),
                Err(e) => Err(format!("udp refused: {e:?}")),
            }
        }
        "tcp" => {
            use wasip2::sockets::{network::IpAddressFamily, tcp_create_socket};
            match tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4) {
                Ok(_) => Ok("tcp socket opened".into()),
                Err(e) => Err(format!("tcp refused: {e:?}")),
            }
        }
        "default-panic" => {
            drop(std::panic::take_hook());
            panic!("stdio guest: panicking with the default hook");
        }
        big if big.starts_with("big:") => {
            let n: usize = big[4..].parse().map_err(|e| format!("{e}"))?;
            Ok("x".repeat(n))
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

impl Game for Stdio {
    type In = String;
    type Out = String;
    fn on_message(&mut self, ctx: &mut Ctx<String>, player: &str, command: String) -> GameResult {
        self.served += 1;
        let answer = run(&command)?;
        if command.starts_with("big:") {
            ctx.send(player, &answer);
        } else {
            ctx.send(player, &format!("{command}: {answer}"));
        }
        Ok(())
    }
}

warden_sdk::export_game!(Stdio);
