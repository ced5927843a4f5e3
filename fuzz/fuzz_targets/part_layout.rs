//! The copy planner on any object size (0 to past 5 TiB), threshold, part size and free slots:
//! never a panic; a multipart plan has 1 to 10,000 parts, numbered from 1, each 5 MiB to 5 GiB
//! but the last, tiling the object exactly; an object over 5 TiB is refused.
#![no_main]

use fanout_copy_core::plan::{
    plan, Method, PartSize, Thresholds, MAX_OBJECT_SIZE, MAX_PARTS, MAX_PART_SIZE, MIN_PART_SIZE,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u64, u64, u64, u16)| {
    let (size, threshold, part_size, free_slots) = input;
    let size = size % (MAX_OBJECT_SIZE + 2);
    let part_size = if part_size % 5 == 0 {
        PartSize::Auto
    } else {
        PartSize::Fixed(part_size % (2 * MAX_PART_SIZE))
    };
    let Ok(thresholds) = Thresholds::new(threshold, part_size) else {
        return;
    };
    match plan(size, &thresholds, usize::from(free_slots)) {
        Err(_) => assert!(size > MAX_OBJECT_SIZE),
        Ok(Method::Single) => assert!(size <= thresholds.multipart_threshold()),
        Ok(Method::Multipart(parts)) => {
            assert!(
                !parts.is_empty() && parts.len() as u64 <= MAX_PARTS,
                "{} parts",
                parts.len()
            );
            let mut next = 0;
            for (i, part) in parts.iter().enumerate() {
                assert_eq!(part.number as usize, i + 1);
                assert_eq!(part.first, next, "parts leave a gap or overlap");
                let bytes = part.last - part.first + 1;
                assert!(bytes <= MAX_PART_SIZE, "part {} is {bytes}", part.number);
                if i + 1 < parts.len() {
                    assert!(bytes >= MIN_PART_SIZE, "part {} is {bytes}", part.number);
                }
                next = part.last + 1;
            }
            assert_eq!(next, size, "the parts do not cover the object");
        }
    }
});
