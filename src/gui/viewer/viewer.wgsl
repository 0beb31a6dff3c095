// Sacro's radiograph viewer: modality values (f32, one per pixel) -> VOI window (DICOM PS3.3 C.11.2.1.2:
// LINEAR, LINEAR_EXACT, SIGMOID) -> optional inversion -> grey, blended with a pre-coloured heatmap.
// textureLoad + manual bilinear: 32-bit float textures cannot be filtered by the hardware everywhere.

struct Uniforms {
    image_origin: vec2<f32>, // framebuffer pixel where the image's top-left corner lies
    image_size: vec2<f32>,   // width, height in image pixels
    scale: f32,              // framebuffer pixels per image pixel
    center: f32,
    width: f32,
    func: u32,               // 0 LINEAR, 1 LINEAR_EXACT, 2 SIGMOID, 3 values already in [0, 1]
    invert: u32,
    srgb: u32,               // the target is sRGB: write linear values so the hardware encodes them back
    heat_opacity: f32,
    pad0: f32,
    pad1: vec4<f32>,
};

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var film: texture_2d<f32>;
@group(0) @binding(2) var heat: texture_2d<f32>;
@group(0) @binding(3) var heat_sampler: sampler;

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    // One triangle covering the viewport (the callback's rectangle).
    let x = f32((i << 1u) & 2u) * 2.0 - 1.0;
    let y = f32(i & 2u) * 2.0 - 1.0;
    return vec4<f32>(x, y, 0.0, 1.0);
}

fn voi(x: f32) -> f32 {
    let c = u.center;
    let w = u.width;
    if (u.func == 0u) {
        let c2 = c - 0.5;
        let w2 = w - 1.0;
        if (x <= c2 - w2 / 2.0) { return 0.0; }
        if (x > c2 + w2 / 2.0) { return 1.0; }
        return (x - c2) / w2 + 0.5;
    }
    if (u.func == 1u) {
        if (x <= c - w / 2.0) { return 0.0; }
        if (x > c + w / 2.0) { return 1.0; }
        return (x - c) / w + 0.5;
    }
    if (u.func == 2u) {
        return 1.0 / (1.0 + exp(-4.0 * (x - c) / w));
    }
    return clamp(x, 0.0, 1.0);
}

fn load(p: vec2<i32>) -> f32 {
    let size = vec2<i32>(u.image_size);
    let q = clamp(p, vec2<i32>(0, 0), size - vec2<i32>(1, 1));
    return textureLoad(film, q, 0).r;
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(hi, lo, c <= vec3<f32>(0.04045));
}

@fragment
fn fs_main(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    // Image coordinates of this fragment (pixel centres at i + 0.5).
    let ip = (pos.xy - u.image_origin) / u.scale;
    if (ip.x < 0.0 || ip.y < 0.0 || ip.x >= u.image_size.x || ip.y >= u.image_size.y) {
        discard;
    }
    var value: f32;
    if (u.scale > 1.0) {
        // Magnified: bilinear between the four nearest pixel centres.
        let s = ip - vec2<f32>(0.5, 0.5);
        let f = floor(s);
        let t = s - f;
        let p = vec2<i32>(f);
        let a = mix(load(p), load(p + vec2<i32>(1, 0)), t.x);
        let b = mix(load(p + vec2<i32>(0, 1)), load(p + vec2<i32>(1, 1)), t.x);
        value = mix(a, b, t.y);
    } else {
        value = load(vec2<i32>(floor(ip)));
    }
    var g = voi(value);
    if (u.invert != 0u) { g = 1.0 - g; }
    var rgb = vec3<f32>(g, g, g);
    if (u.heat_opacity > 0.0) {
        let h = textureSampleLevel(heat, heat_sampler, ip / u.image_size, 0.0);
        rgb = mix(rgb, h.rgb, h.a * u.heat_opacity);
    }
    if (u.srgb != 0u) { rgb = srgb_to_linear(rgb); }
    return vec4<f32>(rgb, 1.0);
}
