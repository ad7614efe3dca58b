# Builds assets/fonts/DejaVuSans-subset.ttf from DejaVuSans.ttf (Debian: fonts-dejavu-core).
# Needs fontTools (pip install fonttools). Usage, from the repository root:
#   python3 assets/fonts/make_font.py /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf assets/fonts/DejaVuSans-subset.ttf
import subprocess, sys
from fontTools.ttLib import TTFont
from fontTools.pens.recordingPen import DecomposingRecordingPen
from fontTools.pens.ttGlyphPen import TTGlyphPen

src, out = sys.argv[1], sys.argv[2]
tmp = out + ".tmp"
subprocess.check_call([
    "pyftsubset", src,
    "--unicodes=U+0020-007E,U+00A0-017F,U+0391-03C9,U+2010-2027,U+2030-203A,U+2070-209C,"
    "U+2190-2199,U+2200-22FF,U+2300-23FF,U+25A0-25FF,U+2605-2606,U+2713-2717",
    "--no-hinting", "--desubroutinize", "--drop-tables+=MATH,FFTM", "--output-file=" + tmp,
])
font = TTFont(tmp, recalcTimestamp=False)  # reproducible output
glyf, hmtx = font["glyf"], font["hmtx"]
gs = font.getGlyphSet()
# plotters 0.3.7 (ab_glyph backend) draws each glyph's bitmap at the pen position, ignoring the
# left side bearing. Give every glyph ink-free bounds that start at x = 0 (an extra one-point
# contour at (0, yMin)), so the bitmap's left edge is the pen position and the ink lands where
# the font puts it. Composite glyphs are decomposed first.
for name in font.getGlyphOrder():
    g = glyf[name]
    if g.isComposite():
        rec = DecomposingRecordingPen(gs)
        gs[name].draw(rec)
        pen = TTGlyphPen(None)
        rec.replay(pen)
        glyf[name] = g = pen.glyph()
    if g.numberOfContours <= 0:
        continue
    g.recalcBounds(glyf)
    if g.xMin <= 0:
        continue
    g.expand(glyf)
    g.coordinates.append((0, g.yMin))
    g.flags.append(1)  # on curve
    g.endPtsOfContours.append(len(g.coordinates) - 1)
    g.numberOfContours += 1
    g.recalcBounds(glyf)
    adv, _ = hmtx[name]
    hmtx[name] = (adv, 0)
font.save(out)
import os; os.remove(tmp)
