//! Ops ONNX (opset 17) lacks, written with its primitives.

use nnbundle_format::DType;

use super::Exporter;

impl Exporter<'_> {
    /// SiLU from primitives: x * sigmoid(x).
    pub(crate) fn silu(&mut self, out: &str, x: String) {
        let s = self.temp(out, "sigmoid");
        self.emit("Sigmoid", vec![x.clone()], &s, vec![]);
        self.emit("Mul", vec![x, s], out, vec![]);
    }

    /// GELU from primitives: x/2 * (1 + erf(x / sqrt 2)), or the tanh form.
    pub(crate) fn gelu(&mut self, out: &str, x: String, dtype: DType, tanh: bool) {
        let inner = if tanh {
            let cube = self.temp(out, "cube");
            let three = self.scalar(out, "three", dtype, 3.0);
            self.emit("Pow", vec![x.clone(), three], &cube, vec![]);
            let c = self.scalar(out, "c", dtype, 0.044715);
            let scaled = self.temp(out, "scaled_cube");
            self.emit("Mul", vec![cube, c], &scaled, vec![]);
            let sum = self.temp(out, "sum");
            self.emit("Add", vec![x.clone(), scaled], &sum, vec![]);
            let k = self.scalar(out, "sqrt_2_over_pi", dtype, (2.0 / std::f64::consts::PI).sqrt());
            let arg = self.temp(out, "arg");
            self.emit("Mul", vec![sum, k], &arg, vec![]);
            let t = self.temp(out, "tanh");
            self.emit("Tanh", vec![arg], &t, vec![]);
            t
        } else {
            let k = self.scalar(out, "inv_sqrt2", dtype, std::f64::consts::FRAC_1_SQRT_2);
            let arg = self.temp(out, "arg");
            self.emit("Mul", vec![x.clone(), k], &arg, vec![]);
            let e = self.temp(out, "erf");
            self.emit("Erf", vec![arg], &e, vec![]);
            e
        };
        let one = self.scalar(out, "one", dtype, 1.0);
        let plus = self.temp(out, "one_plus");
        self.emit("Add", vec![inner, one], &plus, vec![]);
        let half = self.scalar(out, "half", dtype, 0.5);
        let hx = self.temp(out, "half_x");
        self.emit("Mul", vec![x, half], &hx, vec![]);
        self.emit("Mul", vec![hx, plus], out, vec![]);
    }
}
