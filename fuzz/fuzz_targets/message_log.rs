//! The message log's records: any bytes as a segment. Reading never panics, and what it
//! reads back is exactly the start of the segment: the records it returns, encoded again,
//! are the bytes they were read from, with consecutive sequence numbers from the first.
#![no_main]

use kefu_relay::msglog::{encode, records_in};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, segment)) = data.split_first_chunk::<8>() else { return };
    let first_lsn = u64::from_le_bytes(*first);
    let records = records_in(segment, first_lsn);
    let mut again = Vec::new();
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.lsn, first_lsn + i as u64);
        encode(record, &mut again);
    }
    assert_eq!(&segment[..again.len()], &again[..]);
});
