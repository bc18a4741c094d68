//! The funding decision (`dialbridge_ledger::decide`), which every toll-free call and
//! dial-out makes before it is answered or placed: the demo's tenants and rates, then
//! a rate sheet of 10,000 prefixes (an operator's real one), and through the ledger's
//! lock as the signaling task calls it. It allocates nothing.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use dialbridge_ledger::{Ledger, Leg, MoneyConfig, Month, TenantBook, decide};

const DEMO: &str = include_str!("../../fixtures/demo.toml");

/// The demo's `[money]` with a dial-out rate sheet of `n` more prefixes (+2000... up
/// to +2000 + n, 4 to 8 digits long) in front of its own.
fn with_prefixes(n: u32) -> MoneyConfig {
    let prefixes: Vec<String> = (0..n)
        .map(|i| format!("\"+2{:0width$}\"", i, width = 3 + (i % 5) as usize))
        .collect();
    let text = format!(
        "{DEMO}\n[[money.rate]]\nleg = \"dial-out\"\ncurrency = \"USD\"\nper_minute = \"0.11\"\nprefixes = [{}]\n",
        prefixes.join(", ")
    );
    MoneyConfig::from_toml_str(&text)
        .unwrap_or_else(|e| unreachable!("{e}"))
        .unwrap_or_else(|| unreachable!())
}

fn book(config: &MoneyConfig, tenant: &str, credits: &str) -> TenantBook {
    let account = config.tenant(tenant).unwrap_or_else(|| unreachable!());
    let mut book = TenantBook::from_account(account);
    book.credits = credits.parse().unwrap_or_else(|e| unreachable!("{e}"));
    book
}

fn funding(c: &mut Criterion) {
    let config = with_prefixes(10_000);
    let contoso = book(&config, "contoso", "20.00");
    let fabrikam = book(&config, "fabrikam", "0.00");
    let month = Month::of(SystemTime::now());
    let rates = &config.rates;
    let cases = [
        (
            "toll_free_credits",
            &contoso,
            Leg::TollFreeInbound {
                number: "+18885550100",
            },
        ),
        (
            "dial_out_pool",
            &contoso,
            Leg::DialOut {
                destination: "+14255557000",
            },
        ),
        (
            "dial_out_rate_anywhere",
            &contoso,
            Leg::DialOut {
                destination: "+442071234567",
            },
        ),
        (
            "dial_out_rate_10k_sheet",
            &contoso,
            Leg::DialOut {
                destination: "+20041234567",
            },
        ),
        (
            "refused_no_credits",
            &fabrikam,
            Leg::TollFreeInbound {
                number: "+18885550100",
            },
        ),
    ];
    for (name, tenant, leg) in cases {
        c.bench_function(&format!("funding/decide/{name}"), |b| {
            b.iter(|| black_box(decide(rates, 60, black_box(tenant), black_box(leg), month)))
        });
    }
    let ledger = Ledger::open(":memory:", config.clone(), SystemTime::now())
        .unwrap_or_else(|e| unreachable!("{e}"));
    let toll_free = Leg::TollFreeInbound {
        number: "+18885550100",
    };
    c.bench_function("funding/ledger_decide_toll_free", |b| {
        b.iter(|| black_box(ledger.decide("contoso", black_box(toll_free), SystemTime::now())))
    });
}

criterion_group!(benches, funding);
criterion_main!(benches);
