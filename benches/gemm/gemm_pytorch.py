# The reference for benches/gemm (src/main.rs has the shapes' meaning): torch.mm on the same shapes and
# operand layouts (transposed operands as transposed views), same thread count (THREADS, default all cores).
import os, time, torch
torch.set_num_threads(int(os.environ.get("THREADS", os.cpu_count())))
fwd = [("stem7x7",64,12544,147),("l1_1x1_in",64,3136,256),("l1_3x3",64,3136,576),("l1_1x1_out",256,3136,64),
  ("l2_1x1_in",128,784,512),("l2_3x3",128,784,1152),("l2_1x1_out",512,784,128),("l3_1x1_in",256,196,1024),
  ("l3_3x3",256,196,2304),("l3_1x1_out",1024,196,256),("l4_1x1_in",512,49,2048),("l4_3x3",512,49,4608),
  ("l4_1x1_out",2048,49,512)]
shapes = [(s, m, n, k, False, False) for s, m, n, k in fwd]
for s, co, np_, kk in [("bwd_l1_3x3",64,8*3136,576),("bwd_l2_3x3",128,8*784,1152),("bwd_l3_3x3",256,8*196,2304),("bwd_l4_3x3",512,8*49,4608),("bwd_stem7x7",64,8*12544,147)]:
    shapes += [(s + "_dw", co, kk, np_, False, True), (s + "_dx", kk, np_, co, True, False)]
for s, co, c, p in [("bwd_l1_1x1_out",256,64,3136),("bwd_l1_1x1_in",64,256,3136),("bwd_l2_1x1_out",512,128,784),
                    ("bwd_l2_1x1_in",128,512,784),("bwd_l3_1x1_out",1024,256,196),("bwd_l3_1x1_in",256,1024,196),("bwd_l4_1x1_out",2048,512,49),("bwd_l4_1x1_in",512,2048,49)]:
    shapes.append((s + "_dw_img", co, c, p, False, True))
print("name,m,n,k,seconds,gflops")
for name, m, n, k, ta, tb in shapes:
    a = torch.rand(k, m).t() if ta else torch.rand(m, k)
    b = torch.rand(n, k).t() if tb else torch.rand(k, n)
    c = torch.empty(m, n)
    reps = int(min(max(2e9 / (2 * m * n * k), 3), 200)); best = 1e9
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps): torch.mm(a, b, out=c)
        best = min(best, (time.perf_counter() - t) / reps)
    print(f"{name},{m},{n},{k},{best:.6f},{2*m*n*k/best/1e9:.1f}")
