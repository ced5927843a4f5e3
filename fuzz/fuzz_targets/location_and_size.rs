//! s3:// URLs and sizes (`16MiB`, `auto`), as the CLI and the functions' variables take them.
//! Never a panic; what reads, prints back to itself.
#![no_main]

use fanout_copy_core::plan::parse_part_size;
use fanout_copy_core::size::parse_size;
use fanout_copy_core::Location;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(location) = text.parse::<Location>() {
        let printed = location.to_string();
        let again: Location = printed.parse().expect("a printed location reads back");
        assert_eq!(again.to_string(), printed);
    }
    if let Ok(size) = parse_size(text) {
        assert_eq!(parse_size(&size.to_string()), Ok(size));
    }
    if let Ok(part_size) = parse_part_size(text) {
        assert_eq!(parse_part_size(&part_size.to_string()), Ok(part_size));
    }
});
