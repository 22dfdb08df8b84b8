import re

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from odoo.addons.phone_validation.models.mail_thread_phone import PHONE_REGEX_PATTERN


class ResPartner(models.Model):
    # mail.thread.phone gives partners a stored, indexed E.164 ``phone_sanitized``,
    # so a customer is found whatever formatting their number was typed with.
    _name = "res.partner"
    _inherit = ["mail.thread.phone", "res.partner"]

    # Indexed: every inbox chunk looks its customers up by sanitized number (see _match_phone_numbers).
    phone_sanitized = fields.Char(index="btree_not_null")
    whatsapp_number = fields.Char(
        "WhatsApp Number", index="btree_not_null", copy=False, readonly=True,
        help="The E.164 number this contact writes from on WhatsApp.")

    @api.model
    def _whatsapp_find_or_create(self, profiles, company=None):
        """The contact of each WhatsApp number, created from its profile name if none.

        :param dict profiles: ``{E.164 number: WhatsApp profile name}``
        :param company: the company of the receiving WhatsApp number: only its contacts
            and shared ones (no company) are matched, and new contacts belong to it
        :return: ``{E.164 number: res.partner}``

        A contact already linked to the number wins; otherwise a contact whose phone or
        mobile is that number (whatever its formatting, see :meth:`_match_phone_numbers`)
        is linked to it. The missing contacts are created with one ``create``.
        """
        found = {}
        company_domain = self._crm_company_partner_domain(company)
        for partner in self.search([("whatsapp_number", "in", list(profiles))] + company_domain, order="id desc"):
            found[partner.whatsapp_number] = partner  # the oldest wins
        by_phone = self._match_phone_numbers([number for number in profiles if number not in found], company)
        for number, partner in by_phone.items():
            if not partner.whatsapp_number:
                partner.whatsapp_number = number
        found.update(by_phone)
        missing = [number for number in profiles if number not in found]
        company_id = company.id if company else False
        created = self.with_context(mail_create_nolog=True).create([
            dict(self._whatsapp_new_partner_values(number, profiles[number]), company_id=company_id)
            for number in missing])
        found.update(zip(missing, created, strict=True))
        return found

    def _whatsapp_recipient(self):
        """The E.164 number WhatsApp messages to this contact go to (and consent is kept for), or False."""
        return self.whatsapp_number or self.phone_sanitized or False

    @api.model
    def _whatsapp_new_partner_values(self, e164, profile_name):
        """Values of the contact created for a new WhatsApp number (extension point)."""
        return {"name": profile_name or e164, "phone": e164, "whatsapp_number": e164}

    @api.model
    def _match_phone_numbers(self, numbers, company=None):
        """Existing contacts for E.164 ``numbers``, in two queries whatever their count.

        With a ``company``, only its contacts and shared ones match.

        A contact matches when its sanitized number (``phone_sanitized``: the mobile
        if it has one, else the phone) is the number, or when its phone *or* its
        mobile is the number written with any formatting, as Odoo's own
        ``phone_mobile_search`` finds it (``+`` or ``00`` prefix, spaces, dots,
        dashes, brackets stripped; the same expression, so the same indexes).
        Companies come after people, then the oldest first.

        :return: ``{number: res.partner}`` for the numbers that have a contact
        """
        numbers = [number for number in dict.fromkeys(numbers) if number]
        if not numbers:
            return {}
        variants = {number: {number, "00" + number.lstrip("+")} for number in numbers}
        formatted = [variant for number_variants in variants.values() for variant in number_variants]
        self.flush_model(["phone", "mobile", "phone_sanitized"])
        self.env.cr.execute(SQL(
            """SELECT id FROM res_partner
                WHERE phone_sanitized = ANY(%(numbers)s)
                   OR (phone IS NOT NULL AND %(phone)s = ANY(%(formatted)s))
                   OR (mobile IS NOT NULL AND %(mobile)s = ANY(%(formatted)s))""",
            numbers=numbers, formatted=formatted,
            phone=self._phone_search_expression("phone"), mobile=self._phone_search_expression("mobile")))
        candidates = self.search([("id", "in", [row[0] for row in self.env.cr.fetchall()])]
                                 + self._crm_company_partner_domain(company), order="is_company, id")
        found = {}
        for partner in candidates:
            stripped = {re.sub(PHONE_REGEX_PATTERN, "", value or "") for value in (partner.phone, partner.mobile)}
            for number in numbers:
                if number not in found and (partner.phone_sanitized == number or stripped & variants[number]):
                    found[number] = partner
        return found

    @api.model
    def _phone_search_expression(self, column):
        """The digits-only expression of ``phone_mobile_search`` (and of its indexes) on a column."""
        return SQL("regexp_replace((%s::text), %s::text, ''::text, 'g'::text)",
                   SQL.identifier("res_partner", column), PHONE_REGEX_PATTERN)

    @api.model
    def _meta_find_or_create(self, people):
        """The contact of each Lead Ads person, found by email (first) or phone, else created.

        Each person is matched within the company of their ``values`` (``company_id``: the
        page's): its contacts and shared ones; see :meth:`_meta_find_or_create_in_company`.
        """
        by_company = {}
        for index, person in enumerate(people):
            by_company.setdefault(person[2].get("company_id") or False, []).append(index)
        result = [None] * len(people)
        for company_id, indexes in by_company.items():
            partners = self._meta_find_or_create_in_company(
                [people[index] for index in indexes], self.env["res.company"].browse(company_id))
            for index, partner in zip(indexes, partners, strict=True):
                result[index] = partner
        return result

    @api.model
    def _meta_find_or_create_in_company(self, people, company):
        """The contact of each Lead Ads person of one company, found by email (first) or phone, else created.

        :param list people: ``(email, e164, values)`` triples, in order; ``values``
            are the new contact's values
        :return: a list of res.partner (empty record for a person with neither email
            nor phone), in the order of ``people``

        Two people of the list sharing an email or a number get one contact (the first
        one's values), as if they had been handled one after the other.
        """
        emails = [email for email, _e164, _values in people if email]
        by_email = {}
        if emails:
            for partner in self.search([("email_normalized", "in", emails)] + self._crm_company_partner_domain(company),
                                       order="is_company desc, id desc"):
                by_email[partner.email_normalized] = partner  # people first, then the oldest
        by_phone = self._match_phone_numbers([e164 for email, e164, _values in people if e164], company)
        new_values, result = [], []
        new_by_key = {}
        for email, e164, values in people:
            partner = (email and by_email.get(email)) or (e164 and by_phone.get(e164)) or None
            if partner is None and (email or e164):
                index = new_by_key.get(("email", email)) if email else None
                if index is None and e164:
                    index = new_by_key.get(("phone", e164))
                if index is None:
                    index = len(new_values)
                    new_values.append(dict(values, email=email or False, phone=e164 or False))
                for key in (("email", email), ("phone", e164)):
                    if key[1]:
                        new_by_key.setdefault(key, index)
                partner = index
            result.append(partner if partner is not None else self.browse())
        created = self.with_context(mail_create_nolog=True).create(new_values)
        return [created[entry] if isinstance(entry, int) else entry for entry in result]

    def action_whatsapp_compose(self):
        """Open the WhatsApp composer for this contact."""
        self.ensure_one()
        if not self._whatsapp_recipient():
            raise UserError(_("%s has no WhatsApp number or valid phone number.", self.display_name))
        return self.env["crm.whatsapp.composer"]._open_action("res.partner", self.id)
