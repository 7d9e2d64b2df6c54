//! `peers-extism-host ECHO.wasm ROUNDS CALLS`: calls the plugin's `on_message` with the 64-byte payload
//! of Warden's dispatch benchmark (a MessagePack bin of 62 bytes), its one host call (`send`) keeping what
//! it is given as Warden's outbox does, and prints the median time per call over ROUNDS rounds of CALLS
//! calls: `extism ns/call <median>`.
use extism::*;
use std::time::Instant;

type Outbox = Vec<Vec<u8>>;

host_fn!(send(outbox: Outbox; data: Vec<u8>) {
    outbox.get()?.lock().unwrap().push(data);
    Ok(())
});

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, wasm, rounds, calls] = &args[..] else {
        eprintln!("usage: peers-extism-host ECHO.wasm ROUNDS CALLS");
        std::process::exit(2);
    };
    let (rounds, calls): (usize, usize) = (rounds.parse().unwrap(), calls.parse().unwrap());
    let outbox = UserData::new(Outbox::new());
    let manifest = Manifest::new([Wasm::data(std::fs::read(wasm).expect("the echo plugin is built"))]);
    let mut plugin = PluginBuilder::new(manifest)
        .with_wasi(false)
        .with_function("send", [PTR], [], outbox.clone(), send)
        .build()
        .expect("the plugin loads");
    // A MessagePack bin8 of 62 bytes: 64 bytes, as in `cargo bench --bench dispatch`.
    let mut payload = vec![0xc4, 62];
    payload.extend([7u8; 62]);
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        for _ in 0..calls {
            plugin.call::<&[u8], ()>("on_message", std::hint::black_box(&payload)).expect("the call succeeds");
            outbox.get().unwrap().lock().unwrap().clear();
        }
        times.push(started.elapsed().as_secs_f64() * 1e9 / calls as f64);
    }
    times.sort_by(f64::total_cmp);
    println!("extism ns/call {:.0}", times[times.len() / 2]);
}
