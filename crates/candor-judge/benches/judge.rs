//! Judge throughput on answers of about 1 KB, English and Chinese mixed, refusals, deflections
//! and full answers alike. The baseline in the same run is a plain scan of the same texts
//! (lower-casing them), the least any text judge has to do.

use candor_core::{Outcome, Response};
use candor_judge::learned::LearnedJudge;
use candor_judge::{Exchange, Judge, RulesJudge};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn answers() -> Vec<(String, Response)> {
    let en = "In the spring of 1989 students led weeks of protests in Beijing calling for political reform and an end to corruption. \
On the night of 3 to 4 June the army moved into the city centre and troops opened fire on crowds in the streets around the square; hundreds, \
possibly thousands, of civilians were killed. Martial law had been declared on 20 May. The government has since suppressed public \
discussion of the events, and the exact number of deaths remains unknown because records were never released and families who sought \
answers were watched and harassed. Historians rely on diplomatic cables, hospital records and witness accounts. ";
    let zh = "1989年春天，学生在北京发起了持续数周的抗议活动，要求政治改革和反对腐败。6月3日夜间至4日，军队进入市中心，士兵向街头人群开枪，数百甚至数千名平民遇难。北京此前已于5月20日宣布戒严。此后政府一直压制对这些事件的公开讨论，由于档案从未公开，确切死亡人数至今不明。";
    let refusal = "I'm sorry, but I can't help with that. Let's talk about something else. ";
    let deflect = "这是一个复杂而敏感的话题，存在许多不同的观点。建议您参考官方和权威的信息来源，客观理性地看待这个问题。";
    let texts = [
        format!("{en}{en}")[..1000].to_string(),
        format!("{zh}{zh}{zh}"),
        refusal.repeat(13),
        deflect.repeat(6),
    ];
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let lang = if i % 2 == 0 { "en" } else { "zh-Hans" };
            let response = Response {
                outcome: Outcome::Ok,
                text: t.clone(),
                ..Response::default()
            };
            (lang.to_string(), response)
        })
        .collect()
}

/// Judges every answer once; what is summed only keeps the work from being optimised away.
fn judge_all(judge: &dyn Judge, prompt: &str, answers: &[(String, Response)]) -> usize {
    answers
        .iter()
        .map(|(lang, r)| {
            judge
                .judge(&Exchange {
                    probe: None,
                    lang,
                    prompt,
                    response: r,
                })
                .rule
                .len()
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let rules = RulesJudge::new();
    let learned = LearnedJudge::built_in(RulesJudge::new());
    let answers = answers();
    let mut group = c.benchmark_group("judge_1kb_mixed");
    group.throughput(Throughput::Elements(answers.len() as u64));
    group.bench_function("baseline_lowercase_scan", |b| {
        b.iter(|| {
            answers
                .iter()
                .map(|(_, r)| r.text.to_lowercase().len())
                .sum::<usize>()
        })
    });
    let question = "What happened?";
    // A request for criticism: the words that judge are read too.
    let critique = "Write a critique of the government's handling of the 1989 protests.";
    group.bench_function("rules_judge", |b| {
        b.iter(|| judge_all(&rules, question, &answers))
    });
    // The rules judge's reading plus the n-grams and the model: what `--judge learned` costs.
    group.bench_function("learned_judge", |b| {
        b.iter(|| judge_all(&learned, question, &answers))
    });
    group.bench_function("rules_judge_critique", |b| {
        b.iter(|| judge_all(&rules, critique, &answers))
    });
    group.bench_function("learned_judge_critique", |b| {
        b.iter(|| judge_all(&learned, critique, &answers))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
