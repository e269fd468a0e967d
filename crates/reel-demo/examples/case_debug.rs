use reel_demo::eval::held_out_cases;
use reel_demo::analysis::tracks;
fn main() {
    let cases = held_out_cases(3, 0);
    let c = &cases[1];
    println!("{:?}\n{}", c.scene, c.prompt);
    let frames = c.scene.render();
    for t in tracks(&frames) { println!("{:?} {:?} first {:?} last {:?}", t.colour, t.motion(), t.frames[0].as_ref().map(|b| b.centroid), t.frames[16].as_ref().map(|b| b.centroid)); }
}
