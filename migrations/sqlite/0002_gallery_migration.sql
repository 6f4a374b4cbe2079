CREATE TABLE `staged_embeddings` (
	`gallery_id` integer NOT NULL,
	`face_id` integer NOT NULL,
	`model_id` text NOT NULL,
	`embedding` blob NOT NULL,
	PRIMARY KEY(`gallery_id`, `face_id`),
	FOREIGN KEY (`gallery_id`) REFERENCES `galleries`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`face_id`) REFERENCES `faces`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
ALTER TABLE `galleries` ADD `generation` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `galleries` ADD `migration` text;