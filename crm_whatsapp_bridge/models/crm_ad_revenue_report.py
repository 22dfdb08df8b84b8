from odoo import fields, models
from odoo.tools import SQL


class CrmAdRevenueReport(models.Model):
    """Leads from Click-to-WhatsApp ads and Lead Ads, with their won revenue, by ad and campaign.

    One row per lead: ``lead_count`` is 1, ``won_count`` and ``won_revenue`` count the
    lead only when it is won as Odoo's *Won* filter says (active, in a won stage), so
    pivot sums by ad, campaign or channel are the marketer's numbers.
    """

    _name = "crm.ad.revenue.report"
    _description = "Won Revenue by Ad"
    _auto = False
    _rec_name = "ad_name"
    _order = "won_revenue desc, id desc"
    # Read through _table_query (no database view to create in install order); what to flush first:
    _depends = {
        "crm.lead": ["active", "campaign_id", "company_id", "create_date", "date_closed", "expected_revenue",
                     "meta_ad_id", "meta_ad_name", "meta_campaign_id", "meta_leadgen_id", "source_id", "stage_id",
                     "team_id", "user_id", "whatsapp_ad_headline", "whatsapp_ad_id"],
        "crm.stage": ["is_won"],
        "res.company": ["currency_id"],
    }

    lead_id = fields.Many2one("crm.lead", "Lead", readonly=True)
    channel = fields.Selection([("whatsapp", "Click-to-WhatsApp"), ("lead_ads", "Lead Ads")], readonly=True)
    ad_ref = fields.Char("Ad ID", readonly=True)
    ad_name = fields.Char("Ad", readonly=True, help="The ad's headline (WhatsApp) or name (Lead Ads), else its id.")
    campaign_id = fields.Many2one("utm.campaign", "Campaign", readonly=True)
    meta_campaign_ref = fields.Char("Meta Campaign ID", readonly=True)
    source_id = fields.Many2one("utm.source", "Source", readonly=True)
    company_id = fields.Many2one("res.company", "Company", readonly=True)
    currency_id = fields.Many2one("res.currency", "Currency", readonly=True)
    team_id = fields.Many2one("crm.team", "Sales Team", readonly=True)
    user_id = fields.Many2one("res.users", "Salesperson", readonly=True)
    stage_id = fields.Many2one("crm.stage", "Stage", readonly=True)
    create_date = fields.Datetime("Created On", readonly=True)
    date_closed = fields.Datetime("Closed On", readonly=True)
    is_won = fields.Boolean("Won", readonly=True)
    lead_count = fields.Integer("Leads", readonly=True)
    won_count = fields.Integer("Won Leads", readonly=True)
    won_revenue = fields.Monetary("Won Revenue", currency_field="currency_id", readonly=True)

    @property
    def _table_query(self):
        won = SQL("(lead.active AND stage.is_won IS TRUE)")
        return SQL(
            """SELECT lead.id AS id,
                      lead.id AS lead_id,
                      CASE WHEN lead.meta_leadgen_id IS NOT NULL THEN 'lead_ads' ELSE 'whatsapp' END AS channel,
                      COALESCE(lead.whatsapp_ad_id, lead.meta_ad_id) AS ad_ref,
                      COALESCE(NULLIF(lead.whatsapp_ad_headline, ''), NULLIF(lead.meta_ad_name, ''),
                               lead.whatsapp_ad_id, lead.meta_ad_id) AS ad_name,
                      lead.campaign_id,
                      lead.meta_campaign_id AS meta_campaign_ref,
                      lead.source_id,
                      lead.company_id,
                      company.currency_id,
                      lead.team_id,
                      lead.user_id,
                      lead.stage_id,
                      lead.create_date,
                      lead.date_closed,
                      %(won)s AS is_won,
                      1 AS lead_count,
                      CASE WHEN %(won)s THEN 1 ELSE 0 END AS won_count,
                      CASE WHEN %(won)s THEN COALESCE(lead.expected_revenue, 0) ELSE 0 END AS won_revenue
                 FROM crm_lead lead
                 LEFT JOIN crm_stage stage ON stage.id = lead.stage_id
                 LEFT JOIN res_company company ON company.id = lead.company_id
                WHERE lead.whatsapp_ad_id IS NOT NULL OR lead.meta_leadgen_id IS NOT NULL""",
            won=won,
        )
