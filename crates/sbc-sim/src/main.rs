//! sbc-sim: places SIP calls into dialbridge as an operator SBC, the Microsoft PSTN or a
//! softphone.

fn main() {
    eprintln!("sbc-sim: not built yet (issue 6)");
    std::process::exit(2);
}
