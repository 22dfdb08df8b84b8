import re

from markupsafe import Markup, escape

from odoo import _, api, fields, models
from odoo.tools import email_normalize

from ..tools.leadgen import map_answers
from ..tools.phone import to_e164


class CrmLead(models.Model):
    _inherit = "crm.lead"

    meta_leadgen_id = fields.Char("Lead Ads Lead ID", readonly=True, copy=False,
                                  help="Meta's id of the form submission this lead was created from.")
    meta_page_id = fields.Many2one("crm.meta.page", "Meta Page", readonly=True, index="btree_not_null",
                                   ondelete="set null")
    meta_form_id = fields.Many2one("crm.meta.form", "Lead Form", readonly=True, index="btree_not_null",
                                   ondelete="set null")
    meta_form_ref = fields.Char("Lead Form ID", readonly=True, copy=False)
    meta_ad_id = fields.Char("Lead Ads Ad ID", readonly=True, copy=False)
    meta_ad_name = fields.Char("Lead Ads Ad", readonly=True, copy=False)
    meta_adset_id = fields.Char("Lead Ads Ad Set ID", readonly=True, copy=False)
    meta_campaign_id = fields.Char("Lead Ads Campaign ID", readonly=True, copy=False)
    meta_platform = fields.Selection([("fb", "Facebook"), ("ig", "Instagram")], "Lead Ads Platform",
                                     readonly=True, copy=False)
    meta_is_organic = fields.Boolean("Organic Lead", readonly=True, copy=False,
                                     help="Submitted from the form outside any ad.")
    meta_submitted_at = fields.Datetime("Submitted On", readonly=True, copy=False)
    meta_answers = fields.Json("Lead Ads Answers", readonly=True, copy=False)
    meta_answers_text = fields.Text("Form Answers", compute="_compute_meta_answers_text")

    def init(self):
        super().init()
        # One lead per Lead Ads submission: the database refuses a second one, whatever the race.
        self.env.cr.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS crm_lead_meta_leadgen_id_uniq "
            "ON crm_lead (meta_leadgen_id) WHERE meta_leadgen_id IS NOT NULL")

    @api.depends("meta_answers")
    def _compute_meta_answers_text(self):
        for lead in self:
            answers = lead.meta_answers or {}
            lines = [f"{item.get('name')}: {', '.join(map(str, item.get('values') or []))}"
                     for item in answers.get("field_data") or []]
            lines += [f"{item.get('checkbox_key')}: {item.get('is_checked')}"
                      for item in answers.get("custom_disclaimer_responses") or []]
            lead.meta_answers_text = "\n".join(lines)

    # ------------------------------------------------------------------
    # From a Lead Ads submission to a lead
    # ------------------------------------------------------------------

    @api.model
    def _meta_prepare(self, page, meta_lead, lead_object, cache):
        """What a submission needs to become a lead, read without writing anything.

        :param dict cache: shared by the submissions of a batch (forms and countries
            are read once per batch)
        :return: a dict for :meth:`_meta_create_or_merge`, with the customer's
            normalised ``email`` and ``e164`` (the advisory lock keys)
        """
        forms = cache.setdefault("forms", {})
        if meta_lead.form_id not in forms:
            forms[meta_lead.form_id] = self.env["crm.meta.form"].with_context(active_test=False).search(
                [("form_id", "=", meta_lead.form_id)], limit=1)
        form = forms[meta_lead.form_id]
        mapping, labels = form._answer_mapping() if form else ({}, {})
        mapped = map_answers(meta_lead.answers, mapping, labels)
        countries = cache.setdefault("countries", {})
        answer = mapped.values.get("country")
        if answer not in countries:
            countries[answer] = self._meta_country(answer)
        country = countries[answer] or page.company_id.country_id
        raw_phone = mapped.values.get("phone")
        e164 = to_e164(raw_phone, country.code) if raw_phone else None
        email = email_normalize(mapped.values.get("email") or "") or False
        name = mapped.values.get("contact_name") or email or e164 or _("Lead Ads lead %s", meta_lead.leadgen_id)
        refs = cache.setdefault("refs", {})  # UTM source and medium records, read once per batch
        source_xmlid = ("crm_whatsapp_bridge.utm_source_instagram" if meta_lead.is_instagram
                        else "utm.utm_source_facebook")
        medium_xmlid = ("crm_whatsapp_bridge.utm_medium_lead_form_organic" if meta_lead.is_organic
                        else "crm_whatsapp_bridge.utm_medium_lead_ad")
        for xmlid in (source_xmlid, medium_xmlid):
            if xmlid not in refs:
                refs[xmlid] = self.env.ref(xmlid)
        return {
            "page": page, "form": form, "labels": labels, "meta_lead": meta_lead, "lead_object": lead_object,
            "mapped": mapped, "country": country, "raw_phone": raw_phone, "e164": e164, "email": email,
            "name": name, "source": refs[source_xmlid], "medium": refs[medium_xmlid],
        }

    @api.model
    def _meta_create_or_merge(self, submissions):
        """Create the lead of each submission, or post it on the person's open lead.

        :param list submissions: dicts of :meth:`_meta_prepare`, in arrival order
        :return: the lead of each submission (a list, same order)

        Contacts are found or created for the whole batch at once
        (:meth:`res.partner._meta_find_or_create`), open leads are read in one query,
        new leads are created with one ``create``; a person with several submissions
        in the batch gets one lead with every submission posted on it.
        """
        partners = self.env["res.partner"]._meta_find_or_create([
            (sub["email"], sub["e164"], self._meta_partner_values(sub)) for sub in submissions])
        open_leads = self._whatsapp_open_leads(self.env["res.partner"].union(*partners))
        targets, to_create = [], []
        merged_into = {}  # (partner id, company id) -> an existing lead, or the index of a lead to create
        for sub, partner in zip(submissions, partners, strict=True):
            company = sub["page"].company_id
            key = (partner.id, company.id)
            target = merged_into.get(key) if partner else None
            if target is None and partner:
                found = open_leads.filtered(
                    lambda lead, p=partner, c=company: lead.partner_id == p and lead._crm_shared_with(c))[:1]
                if found and not found.meta_leadgen_id:
                    found.write(self._meta_lead_values(sub))
                target = found or None
            if target is None:
                target = len(to_create)
                to_create.append(dict(self._meta_lead_values(sub), **self._meta_new_lead_values(sub, partner)))
            if partner:
                merged_into[key] = target
            targets.append(target)
        created = self.with_context(mail_create_nolog=True, mail_auto_subscribe_no_notify=True).create(to_create)
        leads = [created[target] if isinstance(target, int) else target for target in targets]
        new_by_page = {}
        for sub, target in zip(submissions, targets, strict=True):
            if isinstance(target, int):
                new_by_page[sub["page"]] = new_by_page.get(sub["page"], self.browse()) | created[target]
        for page, new_leads in new_by_page.items():
            new_leads._whatsapp_assign(page)
        for sub, partner, lead in zip(submissions, partners, leads, strict=True):
            if sub["form"]:
                sub["form"]._consent_apply(sub["meta_lead"], partner)
            lead._meta_post_submission(sub, partner)
        return leads

    @api.model
    def _meta_partner_values(self, sub):
        """Values of the contact created for a submission's person (extension point)."""
        values = sub["mapped"].values
        return {
            "name": sub["name"],
            "city": values.get("city") or False,
            "street": values.get("street") or False,
            "zip": values.get("zip") or False,
            "country_id": sub["country"].id or False,
            "function": values.get("job_title") or False,
            "company_name": values.get("company") or False,
            "company_id": sub["page"].company_id.id,
        }

    def _meta_post_submission(self, sub, partner):
        """Post a submission's answers on this lead for its salesperson."""
        # Salespeople notified by email get it through the mail queue: the cron does not wait on SMTP.
        self.with_context(mail_create_nosubscribe=True, mail_notify_force_send=False).message_post(
            body=self._meta_chatter_body(sub["form"], sub["meta_lead"], sub["labels"]),
            author_id=partner.id or False,
            email_from=partner.email_formatted if partner.email else False,
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
            partner_ids=self.user_id.partner_id.ids,
        )

    @api.model
    def _meta_lead_values(self, sub):
        """The Meta ids and raw answers of a submission (set on new leads, and on open leads lacking them)."""
        page, form, meta_lead, lead_object = sub["page"], sub["form"], sub["meta_lead"], sub["lead_object"]
        return {
            "meta_leadgen_id": meta_lead.leadgen_id,
            "meta_page_id": page.id,
            "meta_form_id": form.id or False,
            "meta_form_ref": meta_lead.form_id or False,
            "meta_ad_id": meta_lead.ad_id or False,
            "meta_ad_name": meta_lead.ad_name or False,
            "meta_adset_id": meta_lead.adset_id or False,
            "meta_campaign_id": meta_lead.campaign_id or False,
            "meta_platform": meta_lead.platform if meta_lead.platform in ("fb", "ig") else False,
            "meta_is_organic": meta_lead.is_organic,
            "meta_submitted_at": meta_lead.created_time or False,
            "meta_answers": {
                "field_data": lead_object.get("field_data") or [],
                "custom_disclaimer_responses": lead_object.get("custom_disclaimer_responses") or [],
            },
        }

    @api.model
    def _meta_new_lead_values(self, sub, partner):
        """Values of a new lead for a submission (extension point: assignment rules)."""
        page, form, meta_lead, mapped = sub["page"], sub["form"], sub["meta_lead"], sub["mapped"]
        email, phone, country, name = sub["email"], sub["e164"] or sub["raw_phone"], sub["country"], sub["name"]
        values = {
            "name": _("%(form)s: %(name)s", form=form.name or _("Lead Ads"), name=name),
            "partner_id": partner.id or False,
            "contact_name": name,
            "partner_name": mapped.values.get("company") or False,
            "function": mapped.values.get("job_title") or False,
            "city": mapped.values.get("city") or False,
            "street": mapped.values.get("street") or False,
            "zip": mapped.values.get("zip") or False,
            "country_id": country.id or False,
            "user_id": page.user_id.id,
            "company_id": page.company_id.id,
            "source_id": sub["source"].id,
            "medium_id": sub["medium"].id,
        }
        # The contact's own data wins; the form's answer fills what the contact lacks.
        if email and not partner.email:
            values["email_from"] = email
        if phone and not partner.phone:
            values["phone"] = phone
        if page.team_id:
            values["team_id"] = page.team_id.id
        campaign_name = meta_lead.campaign_name or (
            _("Campaign %s", meta_lead.campaign_id) if meta_lead.campaign_id else form.name)
        if campaign_name:
            values["campaign_id"] = self.env["utm.mixin"]._find_or_create_record("utm.campaign", campaign_name).id
        if mapped.description:
            values["description"] = Markup("<br/>").join(
                Markup("<b>%s</b>: %s") % (label, text) for label, text in mapped.description)
        if mapped.tags:
            values["tag_ids"] = [(6, 0, self._meta_tags(mapped.tags).ids)]
        if mapped.properties and page.team_id:
            values["lead_properties"] = self._meta_properties(page.team_id, mapped.properties)
        return values

    @api.model
    def _meta_country(self, answer):
        if not answer:
            return self.env["res.country"]
        answer = answer.strip()
        Country = self.env["res.country"]
        return (Country.search([("code", "=ilike", answer)], limit=1) if len(answer) == 2
                else Country.search([("name", "=ilike", answer)], limit=1))

    @api.model
    def _meta_tags(self, names):
        Tag = self.env["crm.tag"]
        tags = Tag.browse()
        for name in dict.fromkeys(names):
            tags |= Tag.search([("name", "=ilike", name)], limit=1) or Tag.create({"name": name})
        return tags

    @api.model
    def _meta_properties(self, team, properties):
        """Lead property values; text properties missing on the team are added to its definition."""
        definition = list(team.lead_properties_definition or [])
        known = {item["name"] for item in definition}
        values = {}
        for key, label, text in properties:
            name = "meta_" + (re.sub(r"\W+", "_", key.lower()).strip("_") or "answer")
            if name not in known:
                known.add(name)
                definition.append({"name": name, "string": label, "type": "char"})
            values[name] = text
        if len(definition) != len(team.lead_properties_definition or []):
            team.sudo().lead_properties_definition = definition
        return values

    @api.model
    def _meta_chatter_body(self, form, meta_lead, labels):
        badge = _("Instagram Lead Ads") if meta_lead.is_instagram else _("Facebook Lead Ads")
        lines = [Markup('<span class="badge text-bg-primary me-1">%s</span>') % badge]
        origin = ", ".join(filter(None, (form.name or meta_lead.form_id, meta_lead.ad_name or meta_lead.ad_id)))
        if origin:
            lines.append(Markup("<i>%s</i>") % _("Form answers (%s)", origin))
        for answer in meta_lead.answers:
            label = labels.get(answer.key) or answer.key
            lines.append(Markup("<b>%s</b>: %s") % (label, answer.text))
        for key, checked in meta_lead.disclaimers:
            lines.append(escape(f"{key}: {'✔' if checked else '✘'}"))
        return Markup("<br/>").join(lines)

