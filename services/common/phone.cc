// phone: libphonenumber shim (the only C++ in leadbus).
#include "phone.h"

#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <cstdio>
#include <set>
#include <cstring>
#include <string>

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

extern "C" enum phone_result phone_normalize(const char *raw, const char *region,
                                             char e164[PHONE_MAX], char dial[PHONE_MAX])
{
    e164[0] = dial[0] = '\0';
    try {
        const PhoneNumberUtil *util = PhoneNumberUtil::GetInstance();
        PhoneNumber number;
        std::string in(raw);
        // "919876543210": twelve digits starting with the country code but no "+".
        // libphonenumber reads it as a national number of IN and rejects it; the
        // original system accepted it, so try it with a "+" when the first read fails.
        if (util->Parse(in, region, &number) != PhoneNumberUtil::NO_PARSING_ERROR ||
            !util->IsValidNumber(number)) {
            if (in.empty() || in[0] == '+' ||
                util->Parse("+" + in, region, &number) != PhoneNumberUtil::NO_PARSING_ERROR ||
                !util->IsValidNumber(number)) {
                return PHONE_INVALID;
            }
        }
        std::string out;
        util->Format(number, PhoneNumberUtil::E164, &out);
        if (out.size() >= PHONE_MAX) {
            return PHONE_INVALID;
        }
        std::snprintf(e164, PHONE_MAX, "%s", out.c_str());
        std::string cc_region;
        util->GetRegionCodeForNumber(number, &cc_region);
        if (cc_region == "IN") {
            std::string nsn;
            util->GetNationalSignificantNumber(number, &nsn);
            std::snprintf(dial, PHONE_MAX, "0%s", nsn.c_str());
        } else {
            std::snprintf(dial, PHONE_MAX, "%s", out.c_str());
        }
        return PHONE_VALID;
    } catch (...) {
        return PHONE_INVALID;
    }
}

extern "C" int phone_region_known(const char *region)
{
    std::set<std::string> regions;
    PhoneNumberUtil::GetInstance()->GetSupportedRegions(&regions);
    return regions.count(region) ? 1 : 0;
}

extern "C" int phone_region_of(const char *e164, char region[3])
{
    region[0] = '\0';
    try {
        const PhoneNumberUtil *util = PhoneNumberUtil::GetInstance();
        PhoneNumber number;
        std::string cc;
        if (util->Parse(e164, "ZZ", &number) != PhoneNumberUtil::NO_PARSING_ERROR) {
            return -1;
        }
        util->GetRegionCodeForNumber(number, &cc);
        if (cc.size() != 2) {
            return -1;
        }
        std::snprintf(region, 3, "%s", cc.c_str());
        return 0;
    } catch (...) {
        return -1;
    }
}
