//! Running the `flow` family (`crate::lang::flow`): `each` runs connection
//! steps on every member of a group at once; `repeat` runs steps round
//! after round.
//!
//! Both keep the transcript independent of the scheduler: members and
//! rounds record in branches, which are appended in order, and only once
//! when they are alike.

use super::play::Play;
use super::{closed_early, run, run_on, StepError, StepResult};
use super::{OnContext, Run};
use crate::conn::Conn;
use crate::lang::flow::{Each, Repeat};
use std::future::Future;
use std::pin::Pin;

impl Run for Each {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let members = play.groups.get(&self.connections.value).cloned().unwrap_or_default();
        let mut conns: Vec<Conn> = Vec::new();
        for m in &members {
            // Closed by an earlier step of the spec.
            let mut c = play
                .conns
                .remove(m)
                .ok_or_else(|| StepError::cannot_run(format!("`{m}` is closed")))?;
            c.transcript = play.transcript.branch();
            conns.push(c);
        }
        let steps = &self.steps;
        let placeholders = play.placeholders();
        let cx = &OnContext {
            spec: play.spec,
            placeholders: &placeholders,
        };
        let futures = conns.into_iter().map(|mut conn| async move {
            let mut result = Ok(());
            for step in steps {
                if let Err(why) = run_on(&mut conn, &step.value, cx).await {
                    result = Err(why);
                    break;
                }
            }
            (conn, result)
        });
        let done = join_all(futures.collect()).await;
        // Members' events go in member order, and only once when they are
        // alike, so the transcript is the same whatever the scheduler did.
        let group = &self.connections.value;
        let texts: Vec<Vec<(String, String)>> = done
            .iter()
            .map(|(c, _)| {
                c.transcript
                    .events()
                    .into_iter()
                    .map(|ev| (ev.actor.replace(&c.name, group), ev.text))
                    .collect()
            })
            .collect();
        let alike = texts.windows(2).all(|w| w[0] == w[1]);
        let mut first_error = None;
        for (i, (mut conn, result)) in done.into_iter().enumerate() {
            if alike && i == 0 {
                let mut evs = conn.transcript.events();
                for ev in &mut evs {
                    ev.actor = format!("{group}#*");
                }
                play.transcript.append(evs);
            } else if !alike {
                play.transcript.append(conn.transcript.events());
            }
            if let (Err(mut error), None) = (result, &first_error) {
                if let Some(failure) = error.failure_mut() {
                    failure.detail = format!("{}: {}", conn.name, failure.detail);
                    failure.precondition = closed_early(play.spec, &conn);
                }
                first_error = Some(error);
            }
            conn.transcript = play.transcript.clone();
            play.conns.insert(conn.name.clone(), conn);
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl Run for Repeat {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let parent = play.transcript.clone();
        let mut first: Option<Vec<(String, String)>> = None;
        let mut alike = true;
        for round in 1..=self.times {
            play.transcript = parent.branch();
            play.rounds.push(round);
            let mut result = Ok(());
            for step in &self.steps {
                match run(play, step).await {
                    Ok(()) => {}
                    Err(StepError::Failed(mut failure)) => {
                        failure.detail = format!("round {round} of {}: {}", self.times, failure.detail);
                        result = Err(StepError::Failed(failure));
                        break;
                    }
                    Err(cannot) => {
                        result = Err(cannot);
                        break;
                    }
                }
            }
            play.rounds.pop();
            let events = play.transcript.events();
            let texts: Vec<(String, String)> = events.iter().map(|e| (e.actor.clone(), e.text.clone())).collect();
            match &first {
                None => {
                    first = Some(texts);
                    parent.append(events);
                }
                Some(f) if *f == texts && result.is_ok() => {}
                Some(_) => {
                    alike = false;
                    parent.record("", format!("round {round}:"));
                    parent.append(events);
                }
            }
            if result.is_err() {
                play.transcript = parent;
                return result;
            }
        }
        play.transcript = parent;
        let note = if alike { "alike" } else { "not all alike" };
        play.transcript
            .record("", format!("repeated {} times, {note}", self.times));
        Ok(())
    }
}

/// Runs futures concurrently on this task and returns their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future finished")).collect()
}
