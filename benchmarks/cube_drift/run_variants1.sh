set -x
O="env PYTHONPATH=/work/wt-old/src nice -n 19 python detect_boxes.py --split test --mode motion"
N="nice -n 19 python detect_boxes.py --split test --mode motion"
$O --out m_old_native.pkl
$O --threads1 --out m_old_native_t1.pkl
$O --variant first60 --out m_old_first60.pkl
$N --threads1 --out m_new_native_t1.pkl
$N --out m_new_native.pkl
$N --variant whole --out m_new_whole.pkl
