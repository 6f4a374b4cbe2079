CREATE TABLE `libraries` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`model_id` text NOT NULL,
	`dimension` integer NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `libraries_name_unique` ON `libraries` (`name`);--> statement-breakpoint
CREATE TABLE `library_faces` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`photo_id` integer NOT NULL,
	`box` text NOT NULL,
	`keypoints` text,
	`score` real NOT NULL,
	`quality` real NOT NULL,
	`embedding` blob NOT NULL,
	`person_id` integer,
	`clustered` integer DEFAULT false NOT NULL,
	FOREIGN KEY (`photo_id`) REFERENCES `library_photos`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`person_id`) REFERENCES `library_people`(`id`) ON UPDATE no action ON DELETE set null
);
--> statement-breakpoint
CREATE INDEX `library_faces_photo` ON `library_faces` (`photo_id`);--> statement-breakpoint
CREATE INDEX `library_faces_person` ON `library_faces` (`person_id`);--> statement-breakpoint
CREATE TABLE `library_people` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`library_id` integer NOT NULL,
	`name` text,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`library_id`) REFERENCES `libraries`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `library_photos` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`library_id` integer NOT NULL,
	`content_hash` text NOT NULL,
	`path` text NOT NULL,
	`format` text NOT NULL,
	`bytes` integer NOT NULL,
	`width` integer NOT NULL,
	`height` integer NOT NULL,
	`perceptual_hashes` text,
	`face_count` integer NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`library_id`) REFERENCES `libraries`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `library_photos_content` ON `library_photos` (`library_id`,`content_hash`);