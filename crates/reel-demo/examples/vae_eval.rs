use candle_core::{DType, Device, Tensor};
use reel_demo::eval::held_out_cases;
use reel_demo::analysis::tracks;
use reel_models::wan::WanVae;
use reel_models::weights::ComponentFolder;
fn main() {
    let vb = unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&["/work/demo-train/vae.state.safetensors"], DType::F32, &Device::Cpu).unwrap() };
    let vae = WanVae::new(&reel_demo::model::vae_config(vec![0.0; 8], vec![1.0; 8]), vb).unwrap();
    let _ = ComponentFolder::open("models/demo/vae");
    let cases = held_out_cases(3, 0);
    let _ = tracks;
    for (k, case) in cases.iter().enumerate() {
        let frames = case.scene.render();
        let data: Vec<f32> = (0..3).flat_map(|c| frames.iter().flat_map(move |f| f.iter().skip(c).step_by(3).map(|v| *v as f32 / 127.5 - 1.0)).collect::<Vec<_>>()).collect();
        let x = Tensor::from_vec(data, (1, 3, 17, 64, 64), &Device::Cpu).unwrap();
        let y = vae.decode(&vae.encode(&x, None).unwrap().mean, None).unwrap();
        let y = ((y + 1.0).unwrap() * 127.5).unwrap().round().unwrap().clamp(0f32, 255f32).unwrap().to_dtype(DType::U8).unwrap();
        let y = y.squeeze(0).unwrap().permute((1, 2, 3, 0)).unwrap().contiguous().unwrap();
        let rec: Vec<Vec<u8>> = (0..17).map(|i| y.get(i).unwrap().flatten_all().unwrap().to_vec1::<u8>().unwrap()).collect();
        // strip: frames 0, 4, 8, 12, 16 original on top, reconstruction below
        let mut img = image::RgbImage::new(64 * 5, 128);
        for (j, f) in [0usize, 4, 8, 12, 16].iter().enumerate() {
            for y in 0..64 { for x in 0..64 {
                let i = (y * 64 + x) * 3;
                img.put_pixel((j * 64 + x) as u32, y as u32, image::Rgb([frames[*f][i], frames[*f][i+1], frames[*f][i+2]]));
                img.put_pixel((j * 64 + x) as u32, (64 + y) as u32, image::Rgb([rec[*f][i], rec[*f][i+1], rec[*f][i+2]]));
            }}
        }
        let img = image::imageops::resize(&img, 64 * 5 * 3, 128 * 3, image::imageops::FilterType::Nearest);
        img.save(format!("/tmp/vae_{k}.png")).unwrap();
        println!("same first/last: {}", frames[0] == frames[16]);
        println!("{} -> truth {:?} rec {:?}", case.prompt, tracks(&frames).iter().map(|t| (t.colour.name(), t.shape().name(), format!("{:?}", t.motion()))).collect::<Vec<_>>(), tracks(&rec).iter().map(|t| (t.colour.name(), t.shape().name(), t.presence())).collect::<Vec<_>>());
    }
}
