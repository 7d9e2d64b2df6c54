//! The journal's encoding: any sequence of entries comes back exactly as written, and a mark taken in the
//! middle takes back exactly what followed it. Its stored form: the chunks written at the two marks
//! rebuild the same journal, and the fuzzer's raw bytes, read as a stored chunk (a damaged row), are
//! refused or read, never a panic, and whatever is read iterates without one.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use warden::room::journal::{Entry, Journal};

/// Entries read from the fuzzer's bytes: a kind byte, then a length byte and that many bytes.
fn entries(mut data: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    while let [kind, len, rest @ ..] = data {
        let n = (*len as usize).min(rest.len());
        let (body, next) = rest.split_at(n);
        data = next;
        let text: Arc<str> = String::from_utf8_lossy(body).into();
        let num = body.iter().fold(0u64, |acc, b| acc.wrapping_mul(257).wrapping_add(u64::from(*b)));
        out.push(match kind % 8 {
            0 => Entry::Begin(num),
            1 => Entry::Join(text),
            2 => Entry::Leave(text),
            3 => Entry::Msg(text, body.to_vec()),
            4 => Entry::Timer(text.to_string()),
            5 => Entry::Tick(num as u32),
            6 => Entry::Features(Arc::new(body.split(|b| *b == b',').map(|n| String::from_utf8_lossy(n).into_owned()).collect())),
            _ => Entry::Loaded(text, (num % 2 == 0).then(|| body.to_vec())),
        });
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let written = entries(data);
    let mut journal = Journal::default();
    let half = written.len() / 2;
    let mut mark = journal.mark();
    let (mut first, mut at_half) = (None, journal.chunk_mark());
    for (i, e) in written.iter().enumerate() {
        if i == half {
            mark = journal.mark();
            first = journal.chunk_since(Journal::default().chunk_mark());
            at_half = journal.chunk_mark();
        }
        journal.push(e);
    }
    assert_eq!(journal.entries().collect::<Vec<_>>(), written);
    let mut rebuilt = Journal::default();
    for chunk in [first, journal.chunk_since(at_half)].into_iter().flatten() {
        rebuilt.append_chunk(&chunk).expect("a chunk the journal wrote reads back");
    }
    assert_eq!(rebuilt.entries().collect::<Vec<_>>(), written, "its two stored chunks rebuild it");
    journal.truncate(mark);
    assert_eq!(journal.entries().collect::<Vec<_>>(), written[..half]);

    let mut damaged = Journal::default();
    if damaged.append_chunk(data).is_ok() {
        let _ = damaged.entries().count();
    }
});
