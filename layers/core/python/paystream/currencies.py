"""ISO 4217 alphabetic currency codes accepted by the API (lowercase, as stored).

The current ISO 4217 list (2025), without the codes that are not money a payment can be made in:
precious metals (XAU, XAG, XPT, XPD), bond-market units (XBA–XBD), SDR (XDR), XSU, XUA, and the
test and no-currency codes (XTS, XXX). Withdrawn codes (HRK, SLL, ZWL, ANG, CUC, MRO, STD, VEF, BYR…)
are not accepted.
"""

from __future__ import annotations

ISO_4217_CODES: frozenset[str] = frozenset(
    """
    aed afn all amd aoa ars aud awg azn
    bam bbd bdt bgn bhd bif bmd bnd bob bov brl bsd btn bwp byn bzd
    cad cdf che chf chw clf clp cny cop cou crc cup cve czk
    djf dkk dop dzd
    egp ern etb eur
    fjd fkp
    gbp gel ghs gip gmd gnf gtq gyd
    hkd hnl htg huf
    idr ils inr iqd irr isk
    jmd jod jpy
    kes kgs khr kmf kpw krw kwd kyd kzt
    lak lbp lkr lrd lsl lyd
    mad mdl mga mkd mmk mnt mop mru mur mvr mwk mxn mxv myr mzn
    nad ngn nio nok npr nzd
    omr
    pab pen pgk php pkr pln pyg
    qar
    ron rsd rub rwf
    sar sbd scr sdg sek sgd shp sle sos srd ssp stn svc syp szl
    thb tjs tmt tnd top try ttd twd tzs
    uah ugx usd usn uyi uyu uyw uzs
    ved ves vnd vuv
    wst
    xaf xcd xcg xof xpf
    yer
    zar zmw zwg
    """.split()
)


def is_currency(code: str) -> bool:
    return code.lower() in ISO_4217_CODES
