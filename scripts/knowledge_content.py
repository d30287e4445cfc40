"""Content of the bundled demo knowledge base: Northwind Cloud, a fictional backup-and-sync company.

Each entry is (path under knowledge/, title, [(heading, [paragraph, ...]), ...]). The path's
extension picks the format `make_knowledge.py` writes it in, so the base has every supported type.
For the tabular and notebook formats the "sections" are shaped as the format is:
- .pptx: (slide title, [bullet, ...]) per slide; a bullet starting "Notes: " is the speaker notes.
- .csv: one section ("", [header row, row, ...]) with rows as tuples.
- .xlsx: (sheet name, [header row, row, ...]) per sheet.
- .ipynb: (heading, [markdown paragraph or ("code", source), ...]) per notebook section.
- .epub: (chapter title, [paragraph, ...]) per chapter.
These documents add facts found nowhere else in the base (tests search for them).
"""

DOCS = [
    (
        "faq/account-basics.md",
        "Account basics",
        [
            (
                "Creating an account",
                [
                    "You can create a Northwind Cloud account at app.northwind.example/signup with any work or personal email address. We send a confirmation link that stays valid for 24 hours.",
                    "Every new account starts with a 14-day free trial of the Pro plan. No credit card is needed to start the trial.",
                ],
            ),
            (
                "Changing your email address",
                [
                    "Go to Settings > Profile > Email and enter the new address. We send a confirmation to both the old and the new address; the change takes effect once you click the link in the new one.",
                ],
            ),
            (
                "Closing your account",
                [
                    "The account owner can close the account under Settings > Account > Close account. Files are kept for 30 days after closing so you can change your mind, then deleted permanently.",
                ],
            ),
        ],
    ),
    (
        "faq/billing-faq.md",
        "Billing FAQ",
        [
            (
                "Which payment methods do you accept?",
                [
                    "We accept Visa, Mastercard, American Express, SEPA direct debit and PayPal. Business and Enterprise customers can also pay by bank transfer against an invoice.",
                ],
            ),
            (
                "When am I charged?",
                [
                    "Monthly plans are charged on the same day each month as the day you subscribed. Annual plans are charged once a year in advance. You receive an invoice by email for every charge.",
                ],
            ),
            (
                "Where do I find my invoices?",
                [
                    "All invoices are under Settings > Billing > Invoices, where you can download them as PDF. Invoices show your VAT number if you added one under Billing details.",
                ],
            ),
            (
                "Can I switch between monthly and annual billing?",
                [
                    "Yes. Switching from monthly to annual takes effect immediately and the unused part of the current month is credited. Switching from annual to monthly takes effect at the end of the paid year.",
                ],
            ),
        ],
    ),
    (
        "faq/security-faq.md",
        "Security FAQ",
        [
            (
                "How is my data encrypted?",
                [
                    "Files are encrypted in transit with TLS 1.3 and at rest with AES-256. Files in the Vault are additionally encrypted end-to-end with a key derived from your Vault passphrase, which we never see.",
                ],
            ),
            (
                "Where are my files stored?",
                [
                    "Customers choose a data region when the account is created: EU (Frankfurt and Amsterdam) or US (Virginia and Oregon). Files never leave the chosen region. The region cannot be changed later without a migration handled by support.",
                ],
            ),
            (
                "Do you support two-factor authentication?",
                [
                    "Yes. Two-factor authentication (2FA) with an authenticator app or a hardware security key (FIDO2/WebAuthn) can be turned on under Settings > Security. Business admins can require 2FA for all members.",
                ],
            ),
        ],
    ),
    (
        "faq/sync-faq.md",
        "Sync FAQ",
        [
            (
                "How does sync work?",
                [
                    "The desktop app watches the Northwind folder on your computer and uploads every change within seconds. Only the changed blocks of a large file are uploaded, so editing a 2 GB video project does not upload 2 GB again.",
                ],
            ),
            (
                "Is there a file size limit?",
                [
                    "Single files can be up to 250 GB on every paid plan and 5 GB on the Free plan.",
                ],
            ),
            (
                "Which files are not synced?",
                [
                    "Temporary files (names starting with ~$ or ending in .tmp), system files such as .DS_Store and Thumbs.db, and files with names longer than 255 characters are skipped.",
                ],
            ),
        ],
    ),
    (
        "faq/sharing-faq.md",
        "Sharing FAQ",
        [
            (
                "How do I share a file with someone outside my team?",
                [
                    "Right-click the file or folder and choose Share > Create link. You can set an expiry date, a password and whether the link allows downloads. Links on the Free plan expire after 7 days.",
                ],
            ),
            (
                "Can I see who opened a shared link?",
                [
                    "On Pro and Business plans, Share > Link activity lists every view and download with date, time and country.",
                ],
            ),
        ],
    ),
    (
        "faq/mobile-app.md",
        "Mobile app FAQ",
        [
            (
                "Which phones are supported?",
                [
                    "The Northwind Cloud app runs on iOS 16 or later and Android 11 or later.",
                ],
            ),
            (
                "Camera upload",
                [
                    "Camera upload backs up photos and videos automatically. By default it only uploads over Wi-Fi; you can allow mobile data under Settings > Camera upload > Use mobile data.",
                ],
            ),
            (
                "Offline files",
                [
                    "Mark a file as Available offline to keep a copy on the phone. Offline files are updated whenever the app opens and has a connection.",
                ],
            ),
        ],
    ),
    (
        "faq/data-export.md",
        "Exporting your data",
        [
            (
                "Downloading everything",
                [
                    "The account owner can request a full export under Settings > Account > Export data. We prepare ZIP archives of up to 50 GB each and email a download link within 48 hours. The links stay valid for 7 days.",
                ],
            ),
            (
                "Exporting version history",
                [
                    "Earlier versions are not part of the standard export. Contact support if you need an export that includes version history; this is available on Business and Enterprise plans.",
                ],
            ),
        ],
    ),
    (
        "faq/support-hours.txt",
        "Contacting support",
        [
            (
                "",
                [
                    "Our support team answers by chat and email Monday to Friday from 08:00 to 20:00 CET. Business customers also get phone support on +49 30 1234 5678 during the same hours.",
                    "Enterprise customers have 24/7 support for priority 1 incidents through their dedicated support line.",
                    "We aim to answer the first message within 4 business hours on Pro, 1 business hour on Business and 30 minutes on Enterprise.",
                    "You can always reach us at support@northwind.example or through the chat button in the app.",
                ],
            ),
        ],
    ),
    (
        "faq/free-trial.txt",
        "Free trial",
        [
            (
                "",
                [
                    "Every new account gets a 14-day free trial of the Pro plan with 1 TB of storage.",
                    "When the trial ends without a plan being chosen, the account moves to the Free plan. Files above the Free plan's 10 GB are kept read-only for 60 days, so nothing is lost; you can download them or upgrade during that time.",
                    "A trial can be extended once by 14 days by contacting support.",
                ],
            ),
        ],
    ),
    (
        "faq/students-and-nonprofits.md",
        "Discounts for students and nonprofits",
        [
            (
                "Students",
                [
                    "Students and teachers get 50% off the Pro plan with a valid school email address. The discount is checked again every 12 months.",
                ],
            ),
            (
                "Nonprofits",
                [
                    "Registered nonprofit organisations get 40% off the Business plan. Apply under Settings > Billing > Nonprofit discount with proof of registration.",
                ],
            ),
        ],
    ),
    (
        "policies/refund-policy.pdf",
        "Refund policy",
        [
            (
                "Annual plans",
                [
                    "If you are not satisfied, you can cancel an annual plan within 30 days of the purchase or renewal date and receive a full refund. After 30 days, annual plans are not refunded, but the plan stays active until the end of the paid year.",
                ],
            ),
            (
                "Monthly plans",
                [
                    "Monthly plans can be cancelled at any time and stay active until the end of the current billing month. Monthly payments are not refunded, with one exception: if you were charged after cancelling because of an error on our side, we refund that charge in full.",
                ],
            ),
            (
                "How refunds are paid",
                [
                    "Refunds go back to the original payment method within 5 to 10 business days. Refunds for invoices paid by bank transfer are sent to the account the payment came from.",
                ],
            ),
            (
                "How to ask for a refund",
                [
                    "Write to billing@northwind.example or use the chat in the app, and include the invoice number. Refund requests are handled by our billing team, not by the automated assistant.",
                ],
            ),
        ],
    ),
    (
        "policies/terms-of-service.pdf",
        "Terms of service (summary)",
        [
            (
                "Your content",
                [
                    "You keep all rights to the files you store. You grant Northwind Cloud only the rights needed to store, back up, sync and share them as you instruct.",
                ],
            ),
            (
                "Acceptable use",
                [
                    "You may not use the service to store or share illegal content, malware, or material that infringes someone else's rights. Accounts that break these rules can be suspended.",
                ],
            ),
            (
                "Service changes",
                [
                    "We give at least 30 days notice by email before a change to the terms that affects paying customers. Price changes take effect at your next renewal.",
                ],
            ),
            (
                "Liability",
                [
                    "Our liability is limited to the fees you paid in the 12 months before the claim, except where the law does not allow such a limit.",
                ],
            ),
        ],
    ),
    (
        "policies/privacy-policy.docx",
        "Privacy policy",
        [
            (
                "What we collect",
                [
                    "We collect the account data you give us (name, email address, billing details), the files you store, and technical data needed to run the service, such as IP addresses and device types in security logs.",
                ],
            ),
            (
                "What we do not do",
                [
                    "We do not sell personal data, we do not use your files to train machine-learning models, and we do not show advertising.",
                ],
            ),
            (
                "How long we keep data",
                [
                    "Security logs are kept for 90 days. Billing records are kept for 10 years because tax law requires it. Files are deleted 30 days after an account is closed.",
                ],
            ),
            (
                "Your rights",
                [
                    "You can ask for a copy of your personal data, its correction or its deletion at privacy@northwind.example. We answer within 30 days. Our data protection officer can be reached at the same address.",
                ],
            ),
        ],
    ),
    (
        "policies/data-retention.docx",
        "Data retention and deleted files",
        [
            (
                "Trash",
                [
                    "Deleted files go to the Trash and can be restored from there for 30 days on the Free and Pro plans and 180 days on Business and Enterprise. After that they are deleted permanently and cannot be recovered, not even by support.",
                ],
            ),
            (
                "Version history",
                [
                    "Northwind Cloud keeps earlier versions of every file: 30 days of versions on Pro, 180 days on Business, and 1 year on Enterprise. The Free plan keeps the last 3 versions.",
                ],
            ),
            (
                "Backups of our systems",
                [
                    "Our own backups are encrypted and kept for 35 days for disaster recovery. They are not used to restore single files for customers.",
                ],
            ),
        ],
    ),
    (
        "policies/acceptable-use.txt",
        "Acceptable use policy",
        [
            (
                "",
                [
                    "Northwind Cloud accounts are for storing, syncing and sharing your own files and those of your organisation.",
                    "Not allowed: distributing malware, sharing content you have no rights to, using shared links as a public content delivery network, or automated scraping of other users' shared links.",
                    "Public links that exceed 200 GB of downloads per day are throttled. Contact sales if you need to distribute large files to many people.",
                    "We review reports of abuse sent to abuse@northwind.example within one business day.",
                ],
            ),
        ],
    ),
    (
        "policies/service-level-agreement.html",
        "Service level agreement",
        [
            (
                "Availability commitment",
                [
                    "For Business and Enterprise plans we commit to 99.9% monthly availability of file access and sync. Enterprise customers can add a 99.95% commitment.",
                ],
            ),
            (
                "Service credits",
                [
                    "If availability falls below the commitment, you receive a credit: 10% of the monthly fee below 99.9%, 25% below 99.0%, and 50% below 95.0%.",
                    "Credits must be requested within 30 days after the end of the affected month by writing to support.",
                ],
            ),
            (
                "Exclusions",
                [
                    "Planned maintenance announced at least 48 hours ahead on status.northwind.example does not count as downtime. Maintenance is scheduled on Sundays between 02:00 and 04:00 CET.",
                ],
            ),
        ],
    ),
    (
        "policies/cancellation.md",
        "Cancelling a subscription",
        [
            (
                "How to cancel",
                [
                    "The account owner cancels under Settings > Billing > Cancel subscription. The plan stays active until the end of the period already paid for; after that the account moves to the Free plan.",
                ],
            ),
            (
                "What happens to my files",
                [
                    "Nothing is deleted when you cancel. If you store more than the Free plan's 10 GB, your files become read-only for 60 days; download what you need or upgrade again in that time.",
                ],
            ),
        ],
    ),
    (
        "products/pricing.html",
        "Pricing",
        [
            (
                "Free",
                [
                    "10 GB of storage, 1 user, sync on up to 3 devices, shared links that expire after 7 days. Free forever.",
                ],
            ),
            (
                "Pro",
                [
                    "1 TB of storage for 1 user, unlimited devices, 30 days of version history and file recovery. 9.99 EUR per month, or 99 EUR per year when paid annually.",
                ],
            ),
            (
                "Business",
                [
                    "From 3 users: 5 TB of pooled storage per user, admin console, 180 days of version history, phone support. 15 EUR per user per month, or 12 EUR per user per month when paid annually.",
                ],
            ),
            (
                "Enterprise",
                [
                    "Unlimited storage, single sign-on (SAML), audit log export, a 99.95% SLA option and a dedicated support line. Priced individually; contact sales@northwind.example.",
                ],
            ),
            (
                "Taxes",
                [
                    "Prices are shown without VAT. VAT is added at checkout according to your billing country unless you enter a valid VAT number.",
                ],
            ),
        ],
    ),
    (
        "products/plans-comparison.html",
        "Compare plans",
        [
            (
                "Storage and users",
                [
                    "Free: 10 GB, 1 user. Pro: 1 TB, 1 user. Business: 5 TB per user, at least 3 users. Enterprise: unlimited storage and users.",
                ],
            ),
            (
                "File recovery",
                [
                    "Free: last 3 versions, 30 days of Trash. Pro: 30 days. Business: 180 days. Enterprise: 1 year of versions.",
                ],
            ),
            (
                "Security",
                [
                    "Two-factor authentication is available on every plan. Business adds enforced 2FA and remote device wipe. Enterprise adds SAML single sign-on and audit log export.",
                ],
            ),
        ],
    ),
    (
        "products/backup.md",
        "Northwind Backup",
        [
            (
                "What it does",
                [
                    "Northwind Backup copies chosen folders of a computer to the cloud on a schedule, every hour by default. Unlike sync, deleting a file on the computer does not delete it from the backup.",
                ],
            ),
            (
                "Restoring a computer",
                [
                    "Open the web app, choose Backups, pick the computer and the point in time, then download the folders or restore them to a new computer with the desktop app.",
                ],
            ),
            (
                "Supported systems",
                [
                    "Backup runs on Windows 10 and 11 and on macOS 12 (Monterey) or later. Linux computers are supported through the command-line client.",
                ],
            ),
        ],
    ),
    (
        "products/vault.md",
        "Northwind Vault",
        [
            (
                "What the Vault is",
                [
                    "The Vault is an end-to-end encrypted folder for your most sensitive files, such as passports, contracts and tax records. Files are encrypted on your device before upload.",
                ],
            ),
            (
                "Vault passphrase",
                [
                    "The Vault is unlocked with a passphrase that only you know. We cannot reset it. If you forget the passphrase, files in the Vault cannot be recovered; write down the recovery key shown when you set up the Vault and keep it somewhere safe.",
                ],
            ),
            (
                "Availability",
                [
                    "The Vault is included in Pro, Business and Enterprise plans.",
                ],
            ),
        ],
    ),
    (
        "products/teams-admin-console.docx",
        "Teams admin console",
        [
            (
                "Managing members",
                [
                    "Business and Enterprise admins invite members under Admin > Members > Invite. New members count towards the bill from the day they accept the invitation.",
                ],
            ),
            (
                "Removing a member",
                [
                    "When an admin removes a member, the member's files are transferred to an admin of your choice, so no company data is lost. The seat is freed at once and the next invoice is reduced pro rata.",
                ],
            ),
            (
                "Policies",
                [
                    "Admins can enforce two-factor authentication, restrict shared links to members only, and block sync on personal devices.",
                ],
            ),
        ],
    ),
    (
        "products/api.md",
        "Developer API",
        [
            (
                "Overview",
                [
                    "The Northwind REST API lets Business and Enterprise customers automate uploads, sharing and user management. Documentation is at developers.northwind.example.",
                ],
            ),
            (
                "Rate limits",
                [
                    "The API allows 600 requests per minute per token. Requests above the limit get HTTP 429 with a Retry-After header.",
                ],
            ),
            (
                "Authentication",
                [
                    "Create personal access tokens under Settings > Developer. Tokens can be limited to read-only access and expire after at most one year.",
                ],
            ),
        ],
    ),
    (
        "products/desktop-app.pdf",
        "Desktop app",
        [
            (
                "Installation",
                [
                    "Download the desktop app from northwind.example/download. It runs on Windows 10 and 11 (64-bit) and macOS 12 or later, on Intel and Apple silicon.",
                ],
            ),
            (
                "Selective sync",
                [
                    "Choose which folders are kept on the computer under Preferences > Selective sync. Folders you leave out stay in the cloud and free disk space.",
                ],
            ),
            (
                "Bandwidth settings",
                [
                    "Upload and download speed can be limited under Preferences > Network, for example to keep video calls smooth while a large upload runs.",
                ],
            ),
        ],
    ),
    (
        "products/integrations.txt",
        "Integrations",
        [
            (
                "",
                [
                    "Northwind Cloud integrates with Microsoft 365 and Google Workspace: Office and Google documents stored in Northwind can be opened and edited in the browser.",
                    "Slack integration: share a Northwind link in Slack and it shows a preview; admins install it from the Slack App Directory.",
                    "Zapier: trigger automations when a file is added to a folder.",
                ],
            ),
        ],
    ),
    (
        "troubleshooting/sync-not-working.md",
        "Sync is stuck or not working",
        [
            (
                "Check the status icon",
                [
                    "A blue icon means sync is in progress, green means up to date, and red means an error. Click the icon to see which file causes the problem.",
                ],
            ),
            (
                "Common fixes",
                [
                    "1. Make sure you are signed in and have storage left: a full account stops uploading. 2. Pause and resume sync from the icon menu. 3. Check that the file is not open and locked by another program. 4. Restart the desktop app.",
                ],
            ),
            (
                "Still stuck",
                [
                    "Send us the log file from Help > Export logs together with a description of the problem. Do not delete and re-download the whole Northwind folder, as unsynced changes would be lost.",
                ],
            ),
        ],
    ),
    (
        "troubleshooting/login-problems.md",
        "Cannot sign in",
        [
            (
                "Forgot password",
                [
                    "Use Forgot password on the sign-in page. The reset link is valid for 1 hour. If no email arrives within 10 minutes, check the spam folder.",
                ],
            ),
            (
                "Lost two-factor device",
                [
                    "Sign in with one of the backup codes you saved when turning on 2FA. Without backup codes, support must verify your identity before turning 2FA off, which takes up to 3 business days.",
                ],
            ),
            (
                "Account locked",
                [
                    "After 10 failed sign-in attempts the account is locked for 30 minutes to protect it. Wait, then try again or reset your password.",
                ],
            ),
        ],
    ),
    (
        "troubleshooting/upload-failed.txt",
        "Uploads fail",
        [
            (
                "",
                [
                    "If an upload fails with 'quota exceeded', your storage is full: delete files, empty the Trash, or upgrade your plan.",
                    "If it fails with 'file too large', the file is over your plan's limit (5 GB on Free, 250 GB on paid plans).",
                    "Uploads through a company proxy can fail when the proxy inspects TLS traffic. Ask your IT team to allow *.northwind.example.",
                    "Browser uploads are limited to 50 GB per file; use the desktop app for larger files.",
                ],
            ),
        ],
    ),
    (
        "troubleshooting/restore-deleted-files.md",
        "Restoring deleted files",
        [
            (
                "From the Trash",
                [
                    "Open the web app, go to Trash, select the files and click Restore. They return to their original folder.",
                ],
            ),
            (
                "Restoring an earlier version",
                [
                    "Right-click a file, choose Version history and pick the version to restore. The current version is kept as a version too, so a restore can be undone.",
                ],
            ),
            (
                "Restoring many files at once",
                [
                    "After ransomware or a mass deletion, use Rewind under the folder's menu to reset a whole folder to a point in time. Rewind is available on Business and Enterprise plans.",
                ],
            ),
        ],
    ),
    (
        "troubleshooting/slow-sync.html",
        "Sync is slow",
        [
            (
                "Check the bandwidth limits",
                [
                    "Open Preferences > Network in the desktop app and make sure upload and download are not limited.",
                ],
            ),
            (
                "Many small files",
                [
                    "Folders with hundreds of thousands of small files (for example node_modules or build output) slow sync down. Exclude them with Selective sync or a .northwindignore file.",
                ],
            ),
            (
                "Network",
                [
                    "Sync uses HTTPS on port 443. VPNs and company proxies can reduce speed; try syncing without the VPN to compare.",
                ],
            ),
        ],
    ),
    (
        "troubleshooting/payment-failed.md",
        "Payment failed",
        [
            (
                "Why payments fail",
                [
                    "Expired cards, insufficient funds, and banks that block recurring payments are the usual causes. The email about the failed payment gives the reason our payment provider received.",
                ],
            ),
            (
                "What happens next",
                [
                    "We retry the payment after 3, 5 and 7 days. If all retries fail, the account becomes read-only until a payment succeeds; no files are deleted for 60 days.",
                ],
            ),
            (
                "Updating your card",
                [
                    "Update the payment method under Settings > Billing > Payment method. We retry the open invoice right away.",
                ],
            ),
        ],
    ),
    (
        "troubleshooting/desktop-app-crashes.docx",
        "Desktop app crashes or will not start",
        [
            (
                "First steps",
                [
                    "Update to the latest version from northwind.example/download; crashes are often fixed already. Restart the computer afterwards.",
                ],
            ),
            (
                "Reset the app",
                [
                    "Quit the app, then hold Shift while starting it to open the reset dialog and choose Reset settings. Your files are not touched, but you will need to sign in again.",
                ],
            ),
            (
                "Antivirus software",
                [
                    "Some antivirus programs block the app's file watcher. Add the Northwind folder and the app to the antivirus exceptions.",
                ],
            ),
        ],
    ),
    (
        "troubleshooting/shared-link-not-working.txt",
        "A shared link does not open",
        [
            (
                "",
                [
                    "Check whether the link has expired or was turned off by its owner: the page then says 'This link is no longer available'.",
                    "Links protected by a password ask for it before showing the files. The password is case-sensitive.",
                    "If your company's admin restricted shared links to members only, people outside the company cannot open them.",
                    "Links are also disabled while the owner's account is read-only because of a failed payment.",
                ],
            ),
        ],
    ),
    (
        "troubleshooting/mobile-camera-upload.md",
        "Camera upload does not work",
        [
            (
                "Permissions",
                [
                    "On iOS, allow Photos access with Full Access under Settings > Privacy > Photos > Northwind. On Android, allow Photos and videos permission.",
                ],
            ),
            (
                "Background uploads",
                [
                    "Phones pause background work to save battery. On iOS, turn on Background App Refresh for Northwind; on Android, set battery usage for the app to Unrestricted.",
                ],
            ),
            (
                "Wi-Fi only",
                [
                    "Camera upload waits for Wi-Fi by default. To upload over mobile data, turn on Settings > Camera upload > Use mobile data.",
                ],
            ),
        ],
    ),
    (
        "company/about.md",
        "About Northwind Cloud",
        [
            (
                "Who we are",
                [
                    "Northwind Cloud GmbH was founded in 2016 in Berlin and serves over 400,000 customers in 60 countries. We build simple, private backup and sync for people and small businesses.",
                ],
            ),
            (
                "Contact",
                [
                    "Address: Northwind Cloud GmbH, Torstrasse 100, 10119 Berlin, Germany. Sales: sales@northwind.example. Press: press@northwind.example.",
                ],
            ),
        ],
    ),
    (
        "company/status-and-incidents.html",
        "Service status and incidents",
        [
            (
                "Where to check",
                [
                    "The current status of every Northwind service is shown at status.northwind.example. You can subscribe to incident updates by email or RSS there.",
                ],
            ),
            (
                "During an incident",
                [
                    "We post the first update within 15 minutes of detecting a major incident and update at least every 30 minutes until it is resolved. A post-incident report follows within 5 business days.",
                ],
            ),
        ],
    ),
    (
        "products/release-notes-2026-q1.pptx",
        "Release notes Q1 2026",
        [
            (
                "What is new in Northwind Cloud",
                [
                    "January to March 2026: desktop app 5.2, mobile app 8.0, file requests and storage reports.",
                    "Notes: Every feature in this deck is live for all customers since 31 March 2026.",
                ],
            ),
            (
                "Desktop app 5.2",
                [
                    "Metered connections: the desktop app detects metered Wi-Fi and mobile hotspots and holds back uploads larger than 100 MB until an unmetered network is available.",
                    "The tray menu now shows the upload queue with an estimated time to finish.",
                ],
            ),
            (
                "Mobile app 8.0",
                [
                    "Document scanner: tap + > Scan to photograph paper documents; the app straightens the pages and saves them as a searchable PDF in the folder you choose.",
                    "Notes: The scanner reads text in English, German, French, Spanish and Italian.",
                ],
            ),
            (
                "File requests",
                [
                    "Pro, Business and Enterprise users can create a file request: an upload-only link that lets anyone send files into a folder without seeing what is already in it.",
                    "The folder owner gets an email for every upload and can close the request at any time from Share > File requests.",
                ],
            ),
            (
                "Storage reports for admins",
                [
                    "Business and Enterprise admins can download a monthly storage report (CSV) with the storage used by every member under Admin > Reports > Storage.",
                ],
            ),
        ],
    ),
    (
        "company/data-centres.csv",
        "Data centres",
        [
            (
                "",
                [
                    ("Region", "Site", "Role", "Certifications", "Power", "In service since"),
                    (
                        "EU",
                        "Frankfurt am Main, Germany",
                        "primary",
                        "ISO 27001; BSI C5",
                        "100% renewable (hydro and wind)",
                        "2016",
                    ),
                    ("EU", "Amsterdam, Netherlands", "replica", "ISO 27001; NEN 7510", "100% renewable (wind)", "2018"),
                    ("US", "Ashburn, Virginia", "primary", "ISO 27001; SOC 2 Type II", "62% renewable", "2019"),
                    ("US", "Hillsboro, Oregon", "replica", "ISO 27001; SOC 2 Type II", "100% renewable (hydro)", "2021"),
                ],
            ),
        ],
    ),
    (
        "products/add-on-prices.xlsx",
        "Add-on prices",
        [
            (
                "Storage add-ons",
                [
                    ("Add-on", "Available on", "Price per month (EUR)", "Price per year (EUR)"),
                    ("Extra 1 TB storage", "Pro", 4.99, 49),
                    ("Extra 10 TB pooled storage", "Business", 39, 390),
                    ("Custom domain for shared links", "Business", 9, 90),
                ],
            ),
            (
                "Service add-ons",
                [
                    ("Add-on", "Available on", "Price", "Details"),
                    (
                        "Onboarding workshop",
                        "Business, Enterprise",
                        "390 EUR once",
                        "Two-hour remote session with a Northwind onboarding specialist for up to 15 admins.",
                    ),
                    (
                        "Assisted migration",
                        "Business, Enterprise",
                        "0.02 EUR per GB once",
                        "Our team moves your data from another provider; minimum charge 200 EUR.",
                    ),
                    (
                        "Advanced audit retention",
                        "Enterprise",
                        "150 EUR per month",
                        "Keeps the audit log for 7 years instead of the standard 1 year.",
                    ),
                ],
            ),
        ],
    ),
    (
        "products/team-onboarding-guide.epub",
        "Team onboarding guide",
        [
            (
                "Before you invite anyone",
                [
                    "Decide who will be admins: we recommend at least two, so that the account never depends on one person.",
                    "Open Admin > Getting started. The setup checklist there has seven steps and shows which are done.",
                ],
            ),
            (
                "Moving files from another provider",
                [
                    "The Migration assistant under Admin > Migration copies files from Dropbox, Google Drive and Microsoft OneDrive into Northwind Cloud. It copies up to 2 TB per day and keeps folder structure and modification dates.",
                    "Shared links from the old provider are not carried over; share the folders again after the migration.",
                ],
            ),
            (
                "Your first week",
                [
                    "Invite members in small groups, starting with the admins. Turn on enforced two-factor authentication before the first invitation, so nobody has to change their settings later.",
                    "Join the free welcome webinar for new admins, every Tuesday at 15:00 CET; sign up at northwind.example/webinars.",
                ],
            ),
        ],
    ),
    (
        "products/api-examples.ipynb",
        "API examples",
        [
            (
                "Setup",
                [
                    "All examples call the base URL https://api.northwind.example/v2 with a personal access token in the Authorization header.",
                    (
                        "code",
                        'import requests\n\nBASE = "https://api.northwind.example/v2"\nHEADERS = {"Authorization": "Bearer YOUR_TOKEN"}',
                    ),
                ],
            ),
            (
                "List the files in a folder",
                [
                    "Results come in pages of up to 500 items; pass the cursor from the previous response to get the next page.",
                    (
                        "code",
                        'response = requests.get(f"{BASE}/folders/root/files", headers=HEADERS, params={"page_size": 500})\nresponse.raise_for_status()\nfor item in response.json()["items"]:\n    print(item["name"], item["size"])',
                    ),
                ],
            ),
            (
                "Upload a large file",
                [
                    "Files over 100 MB must be uploaded through a resumable upload session: create the session, send the file in parts of 8 to 64 MB, then commit. An unfinished session expires after 24 hours.",
                    (
                        "code",
                        'session = requests.post(f"{BASE}/uploads/sessions", headers=HEADERS, json={"name": "video.mp4", "folder": "root"}).json()\nwith open("video.mp4", "rb") as handle:\n    for number, part in enumerate(iter(lambda: handle.read(32 * 1024 * 1024), b""), start=1):\n        requests.put(f"{BASE}/uploads/sessions/{session[\'id\']}/parts/{number}", headers=HEADERS, data=part)\nrequests.post(f"{BASE}/uploads/sessions/{session[\'id\']}/commit", headers=HEADERS)',
                    ),
                ],
            ),
        ],
    ),
]
