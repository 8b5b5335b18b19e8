set -x
N="nice -n 19 python detect_boxes.py --split training --threads1"
$N --mode combined --out tr_new_native.pkl
for v in whole span20 span40 span100 span120 span180 seq60 median60 median180; do $N --mode motion --variant $v --out tr_m_$v.pkl; done
